import { ApiError, SESSION_EXPIRED, errorFromResponse } from "./errors";
import type { EventsTicket, TokenResponse } from "./types";

export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

export interface RequestOptions {
  method?: string;
  /** Sent as JSON. */
  body?: unknown;
  query?: Record<string, string | number>;
  signal?: AbortSignal;
}

type TokenListener = (token: string | null) => void;

/**
 * The API over fetch, with the access token kept in memory only (never in
 * localStorage or sessionStorage: a script injected into the page could read
 * those). The refresh token is an httpOnly cookie the browser sends to
 * /api/v1/auth by itself; the login's JSON answer carries none (its
 * refresh_token is null unless a non-browser client asks for it), and this
 * client never asks.
 *
 * A 401 refreshes the access token once and retries the request. Concurrent
 * 401s share a single refresh: the server rotates the refresh token on every
 * use and treats a second use of the old one as theft, revoking the login.
 */
export class ApiClient {
  readonly base: string;
  private readonly fetchFn: FetchFn;
  private accessToken: string | null = null;
  private refreshing: Promise<string | null> | null = null;
  /** Bumped by logout: a refresh that started before it must not sign back in. */
  private generation = 0;
  private readonly tokenListeners = new Set<TokenListener>();
  private readonly sessionEndListeners = new Set<() => void>();

  constructor(fetchFn: FetchFn = (input, init) => fetch(input, init), base = "/api/v1") {
    this.fetchFn = fetchFn;
    this.base = base;
  }

  get token(): string | null {
    return this.accessToken;
  }

  /** Called with the new token after every sign-in, refresh and sign-out. */
  onTokenChange(listener: TokenListener): () => void {
    this.tokenListeners.add(listener);
    return () => this.tokenListeners.delete(listener);
  }

  /** Called when the server refuses to refresh: the session is over, sign in again. */
  onSessionEnd(listener: () => void): () => void {
    this.sessionEndListeners.add(listener);
    return () => this.sessionEndListeners.delete(listener);
  }

  async login(email: string, password: string): Promise<void> {
    const response = await this.fetchFn(`${this.base}/auth/login`, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
    if (!response.ok) throw await errorFromResponse(response);
    const tokens = (await response.json()) as TokenResponse;
    this.generation += 1;
    this.setToken(tokens.access_token);
  }

  /**
   * A new access token from the refresh cookie; null when the server refuses
   * (no cookie, expired, revoked: the session is over). Throws when there is no
   * usable answer (network down, server error): the session may still be fine.
   * Single-flight: callers that arrive while a refresh runs share it.
   */
  refresh(): Promise<string | null> {
    this.refreshing ??= this.refreshOnce().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  async logout(): Promise<void> {
    this.generation += 1;
    const token = this.accessToken;
    this.setToken(null);
    const response = await this.fetchFn(`${this.base}/auth/logout`, {
      method: "POST",
      credentials: "same-origin",
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    if (!response.ok) throw await errorFromResponse(response);
  }

  /** A JSON request; resolves to the parsed body (undefined for 204), throws ApiError otherwise. */
  async request<T>(path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.send(path, options);
    if (!response.ok) throw await errorFromResponse(response);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  /** The raw response of an authenticated request, after at most one refresh and retry. */
  async send(path: string, options: RequestOptions = {}): Promise<Response> {
    const used = this.accessToken;
    const first = await this.attempt(path, options, used);
    if (first.status !== 401) return first;
    // Another request may have refreshed while this one was under way.
    const token =
      this.accessToken !== null && this.accessToken !== used
        ? this.accessToken
        : await this.refresh();
    if (token === null) throw new ApiError(401, SESSION_EXPIRED);
    const second = await this.attempt(path, options, token);
    if (second.status === 401) {
      this.endSession();
      throw new ApiError(401, SESSION_EXPIRED);
    }
    return second;
  }

  /**
   * The URL of a new server-sent events stream. EventSource cannot send
   * headers, so the URL carries a ticket bought with the Bearer header: it is
   * good for one connection and a few seconds, so a URL that lands in a log
   * or the browser's history is worth nothing. The access token never goes in
   * a URL. `lastEventId` (the last event seen) makes the server replay what
   * changed since, as the Last-Event-ID header would on a browser reconnect.
   */
  async eventsUrl(lastEventId: string | null = null): Promise<string> {
    const { ticket } = await this.request<EventsTicket>("/events/ticket", { method: "POST" });
    const query = new URLSearchParams({ ticket });
    if (lastEventId) query.set("last_event_id", lastEventId);
    return `${this.base}/events?${query.toString()}`;
  }

  private attempt(path: string, options: RequestOptions, token: string | null): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    let url = `${this.base}${path}`;
    if (options.query) {
      const entries = Object.entries(options.query).map(([key, value]) => [key, String(value)]);
      url += `?${new URLSearchParams(entries).toString()}`;
    }
    const init: RequestInit = {
      method: options.method ?? "GET",
      headers,
      credentials: "same-origin",
    };
    if (options.body !== undefined) init.body = JSON.stringify(options.body);
    if (options.signal) init.signal = options.signal;
    return this.fetchFn(url, init);
  }

  private async refreshOnce(): Promise<string | null> {
    const generation = this.generation;
    const response = await withLock("api-auth-refresh", () =>
      this.fetchFn(`${this.base}/auth/refresh`, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      }),
    );
    if (generation !== this.generation) return this.accessToken; // signed out or in meanwhile
    if (response.ok) {
      const tokens = (await response.json()) as TokenResponse;
      this.setToken(tokens.access_token);
      return tokens.access_token;
    }
    if (response.status >= 400 && response.status < 500 && response.status !== 429) {
      this.endSession();
      return null;
    }
    throw await errorFromResponse(response);
  }

  private endSession(): void {
    this.setToken(null);
    for (const listener of [...this.sessionEndListeners]) listener();
  }

  private setToken(token: string | null): void {
    if (token === this.accessToken) return;
    this.accessToken = token;
    for (const listener of [...this.tokenListeners]) listener(token);
  }
}

/**
 * Run `task` under a browser-wide lock where the Web Locks API exists, so two
 * tabs never present the same refresh cookie at once (the second would look
 * like a stolen token). The tab that waits sends the cookie the first rotated.
 */
function withLock<T>(name: string, task: () => Promise<T>): Promise<T> {
  const locks = typeof navigator === "undefined" ? undefined : navigator.locks;
  return locks ? locks.request(name, task) : task();
}
