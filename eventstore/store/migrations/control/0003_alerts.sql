-- note: alerts: tenants with an open incident or notifications to send, and the weekly summary's sends.

-- Marked when an incident opens or a notification is queued; unmarked by the alert timer once the tenant
-- has neither (only if not marked again meanwhile). The timer also visits tenants whose all-stream moved.
CREATE TABLE IF NOT EXISTS {schema}.alerts_active (
    tenant_id  text PRIMARY KEY,
    marked_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per week the summary was (being) sent: a second timer run or a second instance finds the row
-- and sends nothing; a run that died while sending leaves a claim that runs out.
CREATE TABLE IF NOT EXISTS {schema}.alert_reports (
    week_start     date PRIMARY KEY,
    state          text NOT NULL CHECK (state IN ('sending', 'sent')),
    claimed_until  timestamptz,
    recipients     text NOT NULL,
    sent_at        timestamptz,
    summary        jsonb
);

GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.alerts_active TO {app_role};
GRANT SELECT, INSERT, UPDATE ON {schema}.alert_reports TO {app_role};
