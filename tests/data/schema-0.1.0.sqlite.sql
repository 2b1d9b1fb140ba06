-- Flowboard 0.1.0's schema (sqlite), as `SQLModel.metadata.create_all` made it before Alembic.

CREATE TABLE api_keys (
	id VARCHAR(32) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	prefix VARCHAR(16) NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	created DOUBLE NOT NULL, 
	last_used DOUBLE, 
	PRIMARY KEY (id), 
	UNIQUE (hash)
);

CREATE TABLE credentials (
	name VARCHAR(200) NOT NULL, 
	type VARCHAR(100) NOT NULL, 
	data TEXT NOT NULL, 
	created DOUBLE NOT NULL, 
	updated DOUBLE NOT NULL, 
	PRIMARY KEY (name)
);

CREATE TABLE flows (
	id VARCHAR(64) NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	description TEXT NOT NULL, 
	active BOOLEAN NOT NULL, 
	version INTEGER NOT NULL, 
	document TEXT NOT NULL, 
	created DOUBLE NOT NULL, 
	updated DOUBLE NOT NULL, 
	PRIMARY KEY (id)
);

CREATE TABLE runs (
	id VARCHAR(64) NOT NULL, 
	flow_id VARCHAR(64) NOT NULL, 
	flow_version INTEGER, 
	status VARCHAR(16) NOT NULL, 
	"trigger" VARCHAR(64), 
	source VARCHAR(32), 
	input TEXT, 
	output TEXT, 
	error TEXT, 
	created DOUBLE NOT NULL, 
	started DOUBLE, 
	finished DOUBLE, 
	owner VARCHAR(200), 
	heartbeat DOUBLE, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_runs_created ON runs (created);

CREATE INDEX ix_runs_flow_created ON runs (flow_id, created);

CREATE INDEX ix_runs_status ON runs (status);

CREATE TABLE schedule_fires (
	flow_id VARCHAR(64) NOT NULL, 
	node_id VARCHAR(64) NOT NULL, 
	fire_time BIGINT NOT NULL, 
	claimed DOUBLE NOT NULL, 
	owner VARCHAR(200), 
	run_id VARCHAR(64), 
	missed INTEGER NOT NULL, 
	PRIMARY KEY (flow_id, node_id, fire_time)
);

CREATE INDEX ix_schedule_fires_claimed ON schedule_fires (claimed);

CREATE TABLE schedule_state (
	flow_id VARCHAR(64) NOT NULL, 
	node_id VARCHAR(64) NOT NULL, 
	last_fire BIGINT NOT NULL, 
	updated DOUBLE NOT NULL, 
	PRIMARY KEY (flow_id, node_id)
);

CREATE TABLE settings (
	"key" VARCHAR(100) NOT NULL, 
	value TEXT, 
	PRIMARY KEY ("key")
);

CREATE TABLE flow_versions (
	flow_id VARCHAR(64) NOT NULL, 
	version INTEGER NOT NULL, 
	document TEXT NOT NULL, 
	created DOUBLE NOT NULL, 
	note TEXT NOT NULL, 
	PRIMARY KEY (flow_id, version), 
	FOREIGN KEY(flow_id) REFERENCES flows (id) ON DELETE CASCADE
);

CREATE TABLE steps (
	run_id VARCHAR(64) NOT NULL, 
	node_id VARCHAR(64) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempt INTEGER NOT NULL, 
	started DOUBLE NOT NULL, 
	finished DOUBLE NOT NULL, 
	inputs TEXT, 
	outputs TEXT, 
	error TEXT, 
	PRIMARY KEY (run_id, node_id), 
	FOREIGN KEY(run_id) REFERENCES runs (id) ON DELETE CASCADE
);
