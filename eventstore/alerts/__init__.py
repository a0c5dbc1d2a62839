"""Alerts (issue 12): the failure-rate rule, notifications to PagerDuty, Slack and email, sent once each;
the weekly summary. docs/alerts.md tells the story."""
