import { afterEach, describe, expect, it, vi } from "vitest";

import { FakeApi, json, tokens } from "../test/fakes";
import { ApiClient } from "./client";
import { ApiError, SESSION_EXPIRED, UNREACHABLE, describeDetail, messageOf } from "./errors";

/** An API whose /users/me accepts only `Bearer fresh`; the refresh answers when released. */
function expiringApi() {
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const api = new FakeApi()
    .on("POST", "/auth/login", () => json(200, tokens("stale")))
    .on("POST", "/auth/refresh", async () => {
      await released;
      return json(200, tokens("fresh"));
    })
    .on("GET", "/users/me", (call) =>
      call.headers.get("Authorization") === "Bearer fresh"
        ? json(200, { email: "alice@example.com" })
        : json(401, { detail: "Token expired" }, { "WWW-Authenticate": "Bearer" }),
    );
  return { api, release };
}

afterEach(() => {
  localStorage.clear();
  sessionStorage.clear();
});

describe("ApiClient token refresh", () => {
  it("refreshes once for concurrent 401s and retries each request with the new token", async () => {
    const { api, release } = expiringApi();
    const client = new ApiClient(api.fetch);
    await client.login("alice@example.com", "secret-password");
    expect(client.token).toBe("stale");

    const requests = [1, 2, 3].map(() => client.request<{ email: string }>("/users/me"));
    // Let all three get their 401 before the refresh answers.
    await vi.waitFor(() => expect(api.callsTo("GET", "/users/me")).toHaveLength(3));
    release();
    const results = await Promise.all(requests);

    expect(results).toEqual([1, 2, 3].map(() => ({ email: "alice@example.com" })));
    expect(api.callsTo("POST", "/auth/refresh")).toHaveLength(1);
    const retries = api.callsTo("GET", "/users/me").slice(3);
    expect(retries.map((call) => call.headers.get("Authorization"))).toEqual([
      "Bearer fresh",
      "Bearer fresh",
      "Bearer fresh",
    ]);
    expect(client.token).toBe("fresh");
  });

  it("sends the refresh cookie same-origin, without a body", async () => {
    const { api, release } = expiringApi();
    release();
    const client = new ApiClient(api.fetch);
    await client.refresh();
    const [call] = api.callsTo("POST", "/auth/refresh");
    expect(call?.credentials).toBe("same-origin");
    expect(call?.body).toBeUndefined();
  });

  it("does not refresh again when another request already did", async () => {
    const { api, release } = expiringApi();
    release();
    const client = new ApiClient(api.fetch);
    await client.login("alice@example.com", "secret-password");
    // A request goes out with the stale token; its 401 comes back after a refresh.
    let answer!: (response: Response) => void;
    api.fetch.mockImplementationOnce(
      () =>
        new Promise<Response>((resolve) => {
          answer = resolve;
        }),
    );
    const pending = client.request("/users/me");
    await client.refresh();
    answer(json(401, { detail: "Token expired" }));

    await expect(pending).resolves.toEqual({ email: "alice@example.com" });
    expect(api.callsTo("POST", "/auth/refresh")).toHaveLength(1);
    const retry = api.callsTo("GET", "/users/me").at(-1);
    expect(retry?.headers.get("Authorization")).toBe("Bearer fresh");
  });

  it("ends the session when the refresh is refused", async () => {
    const api = new FakeApi()
      .on("POST", "/auth/login", () => json(200, tokens("stale")))
      .on("POST", "/auth/refresh", () => json(401, { detail: "Invalid or expired refresh token" }))
      .on("GET", "/exports", () => json(401, { detail: "Token expired" }));
    const client = new ApiClient(api.fetch);
    const ended = vi.fn();
    client.onSessionEnd(ended);
    await client.login("alice@example.com", "secret-password");

    const failure = client.request("/exports").catch((error: unknown) => error);
    const error = await failure;
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(401);
    expect((error as ApiError).message).toBe(SESSION_EXPIRED);
    expect(ended).toHaveBeenCalledTimes(1);
    expect(client.token).toBeNull();
    expect(api.callsTo("GET", "/exports")).toHaveLength(1); // no retry without a token
  });

  it("keeps the session when the refresh gets no answer", async () => {
    const api = new FakeApi()
      .on("POST", "/auth/login", () => json(200, tokens("stale")))
      .on("GET", "/exports", () => json(401, { detail: "Token expired" }));
    const client = new ApiClient(api.fetch);
    const ended = vi.fn();
    client.onSessionEnd(ended);
    await client.login("alice@example.com", "secret-password");
    api.fetch.mockImplementation((input: string) =>
      input.endsWith("/auth/refresh")
        ? Promise.reject(new TypeError("Failed to fetch"))
        : Promise.resolve(json(401, { detail: "Token expired" })),
    );

    const error = await client.request("/exports").catch((caught: unknown) => caught);
    expect(messageOf(error)).toBe(UNREACHABLE);
    expect(ended).not.toHaveBeenCalled();
  });

  it("never writes the access token to web storage or a readable cookie", async () => {
    const setItem = vi.spyOn(Storage.prototype, "setItem");
    const { api, release } = expiringApi();
    release();
    const client = new ApiClient(api.fetch);
    await client.login("alice@example.com", "secret-password");
    await client.request("/users/me"); // 401, refresh, retry

    expect(client.token).toBe("fresh");
    expect(setItem).not.toHaveBeenCalled();
    expect(localStorage.length).toBe(0);
    expect(sessionStorage.length).toBe(0);
    expect(document.cookie).not.toContain("fresh");
  });

  it("forgets the token on logout, even before the server answers", async () => {
    const api = new FakeApi()
      .on("POST", "/auth/login", () => json(200, tokens("t1")))
      .on("POST", "/auth/logout", () => json(204, null));
    const client = new ApiClient(api.fetch);
    const seen: (string | null)[] = [];
    client.onTokenChange((token) => seen.push(token));
    await client.login("alice@example.com", "secret-password");
    const done = client.logout();
    expect(client.token).toBeNull();
    await done;
    expect(seen).toEqual(["t1", null]);
    expect(api.callsTo("POST", "/auth/logout")[0]?.credentials).toBe("same-origin");
  });
});

describe("ApiClient browser session", () => {
  it("signs in without asking for the refresh token in the body, and needs none", async () => {
    const api = new FakeApi()
      .on("POST", "/auth/login", () => json(200, tokens("t1"))) // refresh_token: null
      .on("POST", "/auth/refresh", () => json(200, tokens("t2")));
    const client = new ApiClient(api.fetch);
    await client.login("alice@example.com", "secret-password");

    const [login] = api.callsTo("POST", "/auth/login");
    expect(login?.body).toEqual({ email: "alice@example.com", password: "secret-password" });
    expect(login?.credentials).toBe("same-origin"); // so the browser keeps the cookie
    expect(client.token).toBe("t1");
    await expect(client.refresh()).resolves.toBe("t2");
  });

  it("refreshes by cookie alone, whatever a login body carried", async () => {
    const api = new FakeApi()
      .on("POST", "/auth/login", () =>
        json(200, { ...tokens("t1"), refresh_token: "body-refresh-token" }),
      )
      .on("POST", "/auth/refresh", () => json(200, tokens("t2")));
    const client = new ApiClient(api.fetch);
    await client.login("alice@example.com", "secret-password");
    await client.refresh();

    const [refresh] = api.callsTo("POST", "/auth/refresh");
    expect(refresh?.body).toBeUndefined();
    expect([...(refresh?.headers.values() ?? [])].join(" ")).not.toContain("body-refresh-token");
    expect(refresh?.credentials).toBe("same-origin");
    expect(localStorage.length + sessionStorage.length).toBe(0);
  });
});

describe("ApiClient event stream URL", () => {
  it("buys a ticket with the Bearer header and puts only the ticket in the URL", async () => {
    const api = new FakeApi()
      .on("POST", "/auth/login", () => json(200, tokens("secret-access-token")))
      .on("POST", "/events/ticket", () => json(201, { ticket: "t/k+1", expires_in: 30 }));
    const client = new ApiClient(api.fetch);
    await client.login("alice@example.com", "secret-password");

    const url = await client.eventsUrl();
    expect(url).toBe("/api/v1/events?ticket=t%2Fk%2B1");
    expect(url).not.toContain("secret-access-token");
    const [ticket] = api.callsTo("POST", "/events/ticket");
    expect(ticket?.headers.get("Authorization")).toBe("Bearer secret-access-token");
    expect(ticket?.url.search).toBe("");
  });

  it("buys a new ticket for every URL and passes the last event id on", async () => {
    let issued = 0;
    const api = new FakeApi()
      .on("POST", "/auth/login", () => json(200, tokens("t1")))
      .on("POST", "/events/ticket", () => json(201, { ticket: `k${++issued}`, expires_in: 30 }));
    const client = new ApiClient(api.fetch);
    await client.login("alice@example.com", "secret-password");

    expect(await client.eventsUrl()).toBe("/api/v1/events?ticket=k1");
    const next = new URL(await client.eventsUrl("1735718400000000"), "http://app.test");
    expect(next.searchParams.get("ticket")).toBe("k2");
    expect(next.searchParams.get("last_event_id")).toBe("1735718400000000");
    expect(api.callsTo("POST", "/events/ticket")).toHaveLength(2);
  });
});

describe("error words", () => {
  it("reads FastAPI's 422 list", () => {
    const body = {
      detail: [
        { loc: ["body", "password"], msg: "String should have at least 8 characters" },
        { loc: ["body", "email"], msg: "value is not a valid email address" },
      ],
    };
    expect(describeDetail(body)).toBe(
      "password: String should have at least 8 characters; email: value is not a valid email address",
    );
  });

  it("calls a missing answer unreachable", () => {
    expect(messageOf(new TypeError("Failed to fetch"))).toBe(UNREACHABLE);
  });
});
