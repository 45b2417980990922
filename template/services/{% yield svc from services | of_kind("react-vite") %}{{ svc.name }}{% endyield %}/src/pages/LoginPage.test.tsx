import { screen, waitFor } from "@testing-library/react";
import { beforeEach, describe, expect, it } from "vitest";

import {
  ADMIN,
  FakeApi,
  FakeEventSource,
  json,
  makeUser,
  renderApp,
  signedInApi,
  tokens,
} from "../test/fakes";

const ALICE = makeUser();

/** Signed out (no refresh cookie); logging in as `user` with "right-password" works. */
function signedOutApi(user = ALICE): FakeApi {
  return new FakeApi()
    .on("POST", "/auth/refresh", () => json(401, { detail: "No refresh token" }))
    .on("POST", "/auth/login", (call) =>
      (call.body as { password: string }).password === "right-password"
        ? json(200, tokens("token-1"))
        : json(401, { detail: "Incorrect email or password" }),
    )
    .on("GET", "/users/me", () => json(200, user))
    .on("GET", "/exports", () => json(200, { items: [], total: 0, offset: 0, limit: 20 }))
    .on("GET", "/users", () => json(200, { items: [user], total: 1, offset: 0, limit: 10 }));
}

beforeEach(() => {
  FakeEventSource.reset();
});

describe("sign-in", () => {
  it("sends a signed-out visitor of a protected page to /login", async () => {
    renderApp("/exports", signedOutApi());
    expect(await screen.findByRole("heading", { level: 1, name: "Sign in" })).toBeInTheDocument();
    expect(screen.getByTestId("location")).toHaveTextContent("/login");
  });

  it("submits the credentials and goes to /exports", async () => {
    const api = signedOutApi();
    const { user } = renderApp("/login", api);
    await user.type(await screen.findByLabelText("Email"), "alice@example.com");
    await user.type(screen.getByLabelText("Password"), "right-password");
    await user.click(screen.getByRole("button", { name: "Sign in" }));

    expect(
      await screen.findByRole("heading", { level: 1, name: "My exports" }),
    ).toBeInTheDocument();
    expect(screen.getByTestId("location")).toHaveTextContent("/exports");
    expect(api.callsTo("POST", "/auth/login")[0]?.body).toEqual({
      email: "alice@example.com",
      password: "right-password",
    });
    const nav = screen.getByRole("navigation", { name: "Main" });
    expect(nav).toHaveTextContent("My exports");
    expect(nav).not.toHaveTextContent("Users");
    expect(screen.getByText("alice@example.com")).toBeInTheDocument();
  });

  it("shows the API's refusal in words", async () => {
    const { user } = renderApp("/login", signedOutApi());
    await user.type(await screen.findByLabelText("Email"), "alice@example.com");
    await user.type(screen.getByLabelText("Password"), "wrong-password");
    await user.click(screen.getByRole("button", { name: "Sign in" }));

    expect(await screen.findByRole("alert")).toHaveTextContent("Incorrect email or password");
    expect(screen.getByTestId("location")).toHaveTextContent("/login");
  });

  it("says when to try again after too many attempts", async () => {
    const api = signedOutApi().on("POST", "/auth/login", () =>
      json(429, { detail: "Too many login attempts; retry in 30 s" }, { "Retry-After": "30" }),
    );
    const { user } = renderApp("/login", api);
    await user.type(await screen.findByLabelText("Email"), "alice@example.com");
    await user.type(screen.getByLabelText("Password"), "whatever");
    await user.click(screen.getByRole("button", { name: "Sign in" }));

    expect(await screen.findByRole("alert")).toHaveTextContent(
      "Too many attempts, try again in 30 s",
    );
  });

  it("says when the server cannot be reached", async () => {
    const api = signedOutApi().on("POST", "/auth/login", () => {
      throw new TypeError("Failed to fetch");
    });
    const { user } = renderApp("/login", api);
    await user.type(await screen.findByLabelText("Email"), "alice@example.com");
    await user.type(screen.getByLabelText("Password"), "right-password");
    await user.click(screen.getByRole("button", { name: "Sign in" }));

    expect(await screen.findByRole("alert")).toHaveTextContent("The server is unreachable");
  });

  it("returns to the page the user wanted", async () => {
    const { user } = renderApp("/users", signedOutApi(ADMIN));
    await user.type(await screen.findByLabelText("Email"), "admin@example.com");
    await user.type(screen.getByLabelText("Password"), "right-password");
    await user.click(screen.getByRole("button", { name: "Sign in" }));

    expect(await screen.findByRole("heading", { level: 1, name: "Users" })).toBeInTheDocument();
    expect(screen.getByTestId("location")).toHaveTextContent("/users");
  });

  it("stays signed in across a reload through the refresh cookie", async () => {
    const api = signedInApi(ALICE).on("GET", "/exports", () =>
      json(200, { items: [], total: 0, offset: 0, limit: 20 }),
    );
    renderApp("/", api);
    expect(
      await screen.findByRole("heading", { level: 1, name: "My exports" }),
    ).toBeInTheDocument();
    expect(api.callsTo("POST", "/auth/refresh")).toHaveLength(1);
    expect(api.callsTo("GET", "/exports")[0]?.headers.get("Authorization")).toBe("Bearer token-1");
  });

  it("sends to /login when a 401 cannot be cured by a refresh", async () => {
    let refreshes = 0;
    const api = signedInApi(ALICE)
      .on("POST", "/auth/refresh", () =>
        refreshes++ === 0
          ? json(200, tokens("token-1"))
          : json(401, { detail: "Invalid or expired refresh token" }),
      )
      .on("GET", "/exports", () => json(401, { detail: "Token expired" }));
    renderApp("/exports", api);

    expect(await screen.findByRole("heading", { level: 1, name: "Sign in" })).toBeInTheDocument();
    expect(screen.getByRole("status")).toHaveTextContent("Your session has expired");
    expect(api.callsTo("POST", "/auth/refresh")).toHaveLength(2);
  });

  it("logs out: calls the API, forgets the token and goes to /login", async () => {
    const api = signedInApi(ADMIN).on("GET", "/exports", () =>
      json(200, { items: [], total: 0, offset: 0, limit: 20 }),
    );
    const { user, client } = renderApp("/exports", api);
    const nav = await screen.findByRole("navigation", { name: "Main" });
    expect(nav).toHaveTextContent("Users"); // admins see the admin page
    await user.click(screen.getByRole("button", { name: "Log out" }));

    expect(await screen.findByRole("heading", { level: 1, name: "Sign in" })).toBeInTheDocument();
    expect(api.callsTo("POST", "/auth/logout")).toHaveLength(1);
    expect(client.token).toBeNull();
    await waitFor(() => expect(FakeEventSource.open()).toHaveLength(0));
  });
});
