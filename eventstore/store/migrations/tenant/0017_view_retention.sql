-- note: retention's pass over the executions view: the trace events still holding copies of step inputs and outputs.

CREATE INDEX view_trace_events_held ON {schema}.view_trace_events (recorded_at) WHERE data IS NOT NULL;
