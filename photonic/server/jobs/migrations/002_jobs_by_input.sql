-- Every job that took a content as its input, whatever its state (a photo's details list
-- the jobs run on it and what they made).
CREATE INDEX jobs_by_input ON jobs (input_sha256);
