-- The two tables the worker touches, as the API's Alembic migration 0001 creates
-- them (same columns, defaults and constraints). The tests create them in a
-- throwaway database; in a project, the API owns the schema.

CREATE TABLE users (
    id uuid NOT NULL,
    email varchar(320) NOT NULL,
    hashed_password text NOT NULL,
    full_name varchar(200),
    role varchar(16) DEFAULT 'user' NOT NULL,
    is_active boolean DEFAULT true NOT NULL,
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    CONSTRAINT pk_users PRIMARY KEY (id),
    CONSTRAINT uq_users_email UNIQUE (email),
    CONSTRAINT ck_users_role CHECK (role IN ('admin', 'user'))
);

CREATE TABLE export_jobs (
    id uuid NOT NULL,
    owner_id uuid NOT NULL,
    format varchar(8) NOT NULL,
    status varchar(16) DEFAULT 'queued' NOT NULL,
    error text,
    row_count integer,
    file_name text,
    file_size bigint,
    attempts integer DEFAULT 0 NOT NULL,
    created_at timestamptz DEFAULT now() NOT NULL,
    updated_at timestamptz DEFAULT now() NOT NULL,
    started_at timestamptz,
    finished_at timestamptz,
    CONSTRAINT pk_export_jobs PRIMARY KEY (id),
    CONSTRAINT fk_export_jobs_owner_id_users FOREIGN KEY (owner_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT ck_export_jobs_format CHECK (format IN ('csv', 'json')),
    CONSTRAINT ck_export_jobs_status CHECK (status IN ('queued', 'running', 'done', 'failed'))
);

CREATE INDEX ix_export_jobs_owner_id_created_at ON export_jobs (owner_id, created_at);
CREATE INDEX ix_export_jobs_updated_at ON export_jobs (updated_at);
