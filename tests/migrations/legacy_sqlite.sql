-- The schema db.create_all() made on SQLite at commit e1fa8ec, the last one before migrations: every
-- statement create_all emitted for this dialect (captured with SQLAlchemy's create_mock_engine). Frozen: it
-- builds the legacy database tests/test_migrations.py upgrades, so it must never follow the models.

CREATE TABLE import_jobs (
	id INTEGER NOT NULL,
	"key" VARCHAR(32) NOT NULL,
	mode VARCHAR(16) NOT NULL,
	source VARCHAR(255) NOT NULL,
	path TEXT NOT NULL,
	encoding VARCHAR(64) NOT NULL,
	delimiter VARCHAR(1) NOT NULL,
	started_by TEXT NOT NULL,
	status VARCHAR(16) NOT NULL,
	total_records INTEGER,
	processed_count INTEGER NOT NULL,
	success_count INTEGER NOT NULL,
	failed_count INTEGER NOT NULL,
	duplicate_count INTEGER NOT NULL,
	missing_value_count INTEGER NOT NULL,
	invalid_format_count INTEGER NOT NULL,
	other_count INTEGER NOT NULL,
	rows_read INTEGER NOT NULL,
	cursor INTEGER NOT NULL,
	error TEXT,
	created_at DATETIME NOT NULL,
	started_at DATETIME,
	completed_at DATETIME,
	lease_owner VARCHAR(64),
	lease_expires_at DATETIME,
	cancel_requested BOOLEAN NOT NULL,
	notice VARCHAR(255),
	retries INTEGER NOT NULL,
	last_retried_at DATETIME,
	PRIMARY KEY (id)
);

CREATE INDEX ix_import_jobs_created_at_id ON import_jobs (created_at, id);

CREATE INDEX ix_import_jobs_status ON import_jobs (status);

CREATE TABLE records (
	id INTEGER NOT NULL,
	job_id INTEGER NOT NULL,
	"row" INTEGER NOT NULL,
	name TEXT NOT NULL,
	email TEXT NOT NULL,
	email_key TEXT NOT NULL,
	company TEXT,
	status VARCHAR(16) NOT NULL,
	attempts INTEGER NOT NULL,
	response JSON,
	PRIMARY KEY (id),
	CONSTRAINT uq_records_job_row UNIQUE (job_id, "row"),
	FOREIGN KEY(job_id) REFERENCES import_jobs (id) ON DELETE CASCADE,
	UNIQUE (email_key)
);

CREATE INDEX ix_records_job_failed_row ON records (job_id, "row") WHERE status = 'failed';

CREATE TABLE import_errors (
	id INTEGER NOT NULL,
	job_id INTEGER NOT NULL,
	"row" INTEGER NOT NULL,
	category VARCHAR(16) NOT NULL,
	message TEXT NOT NULL,
	data JSON,
	created_at DATETIME NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(job_id) REFERENCES import_jobs (id) ON DELETE CASCADE
);

CREATE INDEX ix_import_errors_job_row_id ON import_errors (job_id, "row", id);

CREATE INDEX ix_import_errors_job_category_row_id ON import_errors (job_id, category, "row", id);
