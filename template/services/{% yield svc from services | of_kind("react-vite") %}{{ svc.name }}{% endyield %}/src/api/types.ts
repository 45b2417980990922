// The API's JSON shapes (see the API service's app/schemas). The template's tests check
// every interface here against the API's OpenAPI schema: keep them in step.

export type Role = "admin" | "user";

export interface User {
  id: string;
  email: string;
  full_name: string | null;
  role: Role;
  is_active: boolean;
  created_at: string;
  updated_at: string;
}

export interface Page<T> {
  items: T[];
  total: number;
  offset: number;
  limit: number;
}

export interface TokenResponse {
  access_token: string;
  token_type: "bearer";
  expires_in: number;
  /** Null for a browser's sign-in: the refresh token is the httpOnly cookie, out of script's reach. */
  refresh_token: string | null;
  refresh_expires_in: number;
}

/** `POST /api/v1/events/ticket`: a single-use pass for one event stream, valid for seconds. */
export interface EventsTicket {
  ticket: string;
  expires_in: number;
}

export type ExportFormat = "csv" | "json";
export type ExportStatus = "queued" | "running" | "done" | "failed";

export interface ExportJob {
  id: string;
  owner_id: string;
  format: ExportFormat;
  status: ExportStatus;
  error: string | null;
  row_count: number | null;
  file_name: string | null;
  file_size: number | null;
  attempts: number;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

/** One server-sent event of /api/v1/events. */
export interface JobEvent {
  job_id: string;
  owner_id: string;
  status: ExportStatus;
  row_count: number | null;
  file_name: string | null;
  file_size: number | null;
  error: string | null;
  updated_at: string;
}

export interface NewUser {
  email: string;
  password: string;
  full_name?: string;
  role: Role;
}

export interface UserChanges {
  role?: Role;
  full_name?: string;
}
