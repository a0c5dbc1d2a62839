-- note: who redrove a change-feed dead letter (the console's button, the command line), kept beside when.
ALTER TABLE {schema}.feed_dead_letters ADD COLUMN redriven_by text;
