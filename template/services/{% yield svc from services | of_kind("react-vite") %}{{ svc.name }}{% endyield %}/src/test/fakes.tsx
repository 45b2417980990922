// Test doubles at the app's boundaries: fetch (the API) and EventSource.
import { render } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { MemoryRouter, useLocation } from "react-router";
import { vi } from "vitest";

import { App } from "../App";
import { ApiClient } from "../api/client";
import type { EventsTicket, ExportJob, JobEvent, TokenResponse, User } from "../api/types";
import type { EventSourceLike } from "../services";

export interface Call {
  method: string;
  path: string;
  url: URL;
  headers: Headers;
  body: unknown;
  credentials: RequestCredentials | undefined;
}

type Handler = (call: Call) => Response | Promise<Response>;

export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(status === 204 ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/** A fake API behind a fetch function: routes by method and path, records every call. */
export class FakeApi {
  readonly calls: Call[] = [];
  private readonly routes = new Map<string, Handler>();

  readonly fetch = vi.fn(async (input: string, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input, "http://app.test");
    const method = init.method ?? "GET";
    const body: unknown = typeof init.body === "string" ? JSON.parse(init.body) : undefined;
    const call: Call = {
      method,
      path: url.pathname,
      url,
      headers: new Headers(init.headers),
      body,
      credentials: init.credentials,
    };
    this.calls.push(call);
    const handler = this.routes.get(`${method} ${url.pathname}`);
    if (!handler) return json(404, { detail: "Not Found" });
    return handler(call);
  });

  /** Answer `METHOD /api/v1/path` (path without the /api/v1 prefix) with `handler`. */
  on(method: string, path: string, handler: Handler | Response | (() => Response)): this {
    const wrapped: Handler = handler instanceof Response ? () => handler.clone() : handler;
    this.routes.set(`${method} /api/v1${path}`, wrapped);
    return this;
  }

  callsTo(method: string, path: string): Call[] {
    return this.calls.filter((call) => call.method === method && call.path === `/api/v1${path}`);
  }
}

// The factories are typed with types.ts (which is checked against the API's schema):
// a field the API renamed fails the type check here too.
export function tokens(accessToken: string): TokenResponse {
  return {
    access_token: accessToken,
    token_type: "bearer",
    expires_in: 900,
    // What a browser's sign-in gets: the refresh token is the httpOnly cookie only.
    refresh_token: null,
    refresh_expires_in: 86400,
  };
}

export function makeUser(overrides: Partial<User> = {}): User {
  return {
    id: "00000000-0000-0000-0000-000000000001",
    email: "alice@example.com",
    full_name: "Alice Example",
    role: "user",
    is_active: true,
    created_at: "2025-01-01T10:00:00Z",
    updated_at: "2025-01-01T10:00:00Z",
    ...overrides,
  };
}

export const ADMIN = makeUser({
  id: "00000000-0000-0000-0000-0000000000ad",
  email: "admin@example.com",
  full_name: "Ada Admin",
  role: "admin",
});

export function makeJob(overrides: Partial<ExportJob> = {}): ExportJob {
  return {
    id: "10000000-0000-0000-0000-000000000001",
    owner_id: "00000000-0000-0000-0000-000000000001",
    format: "csv",
    status: "queued",
    error: null,
    row_count: null,
    file_name: null,
    file_size: null,
    attempts: 0,
    created_at: "2025-01-02T09:00:00Z",
    updated_at: "2025-01-02T09:00:00Z",
    started_at: null,
    finished_at: null,
    ...overrides,
  };
}

export function eventFor(job: ExportJob, changes: Partial<JobEvent>): JobEvent {
  return {
    job_id: job.id,
    owner_id: job.owner_id,
    status: job.status,
    row_count: job.row_count,
    file_name: job.file_name,
    file_size: job.file_size,
    error: job.error,
    updated_at: job.updated_at,
    ...changes,
  };
}

/**
 * `POST /events/ticket`: ticket-1, ticket-2… for any Bearer token (tests that
 * care which token bought a ticket read the call's Authorization header).
 */
export function ticketHandler(): Handler {
  let issued = 0;
  return (call) =>
    call.headers.get("Authorization")?.startsWith("Bearer ")
      ? json(201, { ticket: `ticket-${++issued}`, expires_in: 30 } satisfies EventsTicket)
      : json(401, { detail: "Not authenticated" }, { "WWW-Authenticate": "Bearer" });
}

/** An API where the refresh cookie is valid (a reload stays signed in) for `user`. */
export function signedInApi(user: User, accessToken = "token-1"): FakeApi {
  return new FakeApi()
    .on("POST", "/auth/refresh", () => json(200, tokens(accessToken)))
    .on("GET", "/users/me", () => json(200, user))
    .on("POST", "/auth/logout", () => json(204, null))
    .on("POST", "/events/ticket", ticketHandler());
}

/** An EventSource that tests drive by hand. */
export class FakeEventSource implements EventSourceLike {
  static instances: FakeEventSource[] = [];

  readonly url: string;
  readyState = 0;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent<string>) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;

  constructor(url: string) {
    this.url = url;
    FakeEventSource.instances.push(this);
  }

  static reset(): void {
    FakeEventSource.instances = [];
  }

  /** The streams not closed by the app. */
  static open(): FakeEventSource[] {
    return FakeEventSource.instances.filter((source) => source.readyState !== 2);
  }

  /** A query parameter of this stream's URL. */
  param(name: string): string | null {
    return new URL(this.url, "http://app.test").searchParams.get(name);
  }

  connect(): void {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }

  emit(data: JobEvent): void {
    this.onmessage?.(
      new MessageEvent("message", { data: JSON.stringify(data), lastEventId: data.updated_at }),
    );
  }

  /** A refusal (401, say): the browser gives up on this stream. */
  refuse(): void {
    this.readyState = 2;
    this.onerror?.(new Event("error"));
  }

  /**
   * A network break or the server ending the stream: the browser would try
   * the same URL again by itself (readyState CONNECTING), and a used ticket
   * would be refused.
   */
  drop(): void {
    this.readyState = 0;
    this.onerror?.(new Event("error"));
  }

  close(): void {
    this.readyState = 2;
  }
}

/** Shows the router's current path, so tests can see redirects. */
function LocationProbe() {
  const location = useLocation();
  return <div data-testid="location">{location.pathname}</div>;
}

/** The whole app at `path`, over the fake API and FakeEventSource. */
export function renderApp(path: string, api: FakeApi) {
  const client = new ApiClient(api.fetch);
  const view = render(
    <MemoryRouter initialEntries={[path]}>
      <App client={client} eventSource={FakeEventSource} />
      <LocationProbe />
    </MemoryRouter>,
  );
  return { ...view, client, user: userEvent.setup() };
}
