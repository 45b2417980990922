import { screen, waitFor, within } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";

import type { User } from "../api/types";
import type { FakeApi } from "../test/fakes";
import { ADMIN, FakeEventSource, json, makeUser, renderApp, signedInApi } from "../test/fakes";

function people(count: number): User[] {
  return Array.from({ length: count }, (_, index) =>
    makeUser({
      id: `user-${index + 1}`,
      email: `user${index + 1}@example.com`,
      full_name: `User Number ${index + 1}`,
    }),
  );
}

/** An admin's API over an in-memory users table that answers like the real one. */
function usersApi(initial: User[]): { api: FakeApi; table: User[] } {
  const table = [ADMIN, ...initial];
  const api = signedInApi(ADMIN)
    .on("GET", "/users", (call) => {
      const offset = Number(call.url.searchParams.get("offset"));
      const limit = Number(call.url.searchParams.get("limit"));
      return json(200, {
        items: table.slice(offset, offset + limit),
        total: table.length,
        offset,
        limit,
      });
    })
    .on("POST", "/users", (call) => {
      const body = call.body as { email: string; full_name?: string; role: "user" | "admin" };
      if (table.some((user) => user.email === body.email)) {
        return json(409, { detail: "A user with this e-mail already exists" });
      }
      const created = makeUser({
        id: `user-new-${table.length}`,
        email: body.email,
        full_name: body.full_name ?? null,
        role: body.role,
      });
      table.push(created);
      return json(201, created);
    });
  for (const user of table) {
    api.on("PATCH", `/users/${user.id}`, (call) => {
      Object.assign(user, call.body);
      return json(200, user);
    });
    api.on("DELETE", `/users/${user.id}`, () => {
      table.splice(table.indexOf(user), 1);
      return json(204, null);
    });
  }
  return { api, table };
}

function rowOf(email: string): HTMLElement {
  const cell = screen.getByRole("cell", { name: email });
  const row = cell.closest("tr");
  if (!row) throw new Error(`no row for ${email}`);
  return row;
}

beforeEach(() => {
  FakeEventSource.reset();
});

describe("Users (admin)", () => {
  it("tells a non-admin they have no access and shows no list", async () => {
    const api = signedInApi(makeUser()).on("GET", "/users", () =>
      json(403, { detail: "Admins only" }),
    );
    renderApp("/users", api);
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "You do not have access to this page",
    );
    expect(screen.queryByRole("heading", { name: "Users" })).toBeNull();
    expect(screen.queryByRole("table")).toBeNull();
    expect(screen.getByRole("navigation", { name: "Main" })).not.toHaveTextContent("Users");
  });

  it("lists 10 users a page with email, full name and role, and pages through them", async () => {
    const { api } = usersApi(people(11)); // 12 with the admin
    const { user } = renderApp("/users", api);
    expect(await screen.findByRole("heading", { level: 1, name: "Users" })).toBeInTheDocument();
    await screen.findByRole("cell", { name: "admin@example.com" });

    expect(screen.getAllByTestId("user-row")).toHaveLength(10);
    expect(screen.getByText("Page 1 of 2")).toBeInTheDocument();
    expect(rowOf("user1@example.com")).toHaveTextContent("User Number 1");
    // Only the email's own cell goes by that name (not the one of "Delete <email>").
    expect(screen.getAllByRole("cell", { name: /user1@example\.com/ })).toHaveLength(1);
    expect(screen.getByRole("combobox", { name: "Role for admin@example.com" })).toHaveValue(
      "admin",
    );
    expect(screen.getByRole("combobox", { name: "Role for user1@example.com" })).toHaveValue(
      "user",
    );
    expect(screen.getByRole("button", { name: "Previous" })).toBeDisabled();

    await user.click(screen.getByRole("button", { name: "Next" }));
    expect(await screen.findByText("Page 2 of 2")).toBeInTheDocument();
    expect(screen.getAllByTestId("user-row")).toHaveLength(2);
    expect(screen.getByRole("cell", { name: "user11@example.com" })).toBeInTheDocument();
    expect(api.callsTo("GET", "/users").at(-1)?.url.search).toBe("?offset=10&limit=10");
    expect(screen.getByRole("button", { name: "Next" })).toBeDisabled();
  });

  it("creates a user and shows it in the list", async () => {
    const { api } = usersApi(people(2));
    const { user } = renderApp("/users", api);
    await screen.findByRole("cell", { name: "user2@example.com" });

    await user.type(screen.getByLabelText("New user email"), "new@example.com");
    await user.type(screen.getByLabelText("New user full name"), "New Person");
    await user.type(screen.getByLabelText("New user password"), "long-enough");
    await user.selectOptions(screen.getByLabelText("New user role"), "admin");
    await user.click(screen.getByRole("button", { name: "Create user" }));

    expect(await screen.findByRole("cell", { name: "new@example.com" })).toBeInTheDocument();
    expect(rowOf("new@example.com")).toHaveTextContent("New Person");
    expect(screen.getByRole("combobox", { name: "Role for new@example.com" })).toHaveValue("admin");
    expect(api.callsTo("POST", "/users")[0]?.body).toEqual({
      email: "new@example.com",
      full_name: "New Person",
      password: "long-enough",
      role: "admin",
    });
    expect(screen.getByLabelText("New user email")).toHaveValue("");
  });

  it("says so when the email is taken", async () => {
    const { api } = usersApi(people(1));
    const { user } = renderApp("/users", api);
    await screen.findByRole("cell", { name: "user1@example.com" });
    await user.type(screen.getByLabelText("New user email"), "user1@example.com");
    await user.type(screen.getByLabelText("New user password"), "long-enough");
    await user.click(screen.getByRole("button", { name: "Create user" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("A user with this email exists");
  });

  it("shows the API's validation errors in words", async () => {
    const { api } = usersApi([]);
    api.on("POST", "/users", () =>
      json(422, {
        detail: [
          {
            type: "string_too_short",
            loc: ["body", "password"],
            msg: "String should have at least 8 characters",
          },
        ],
      }),
    );
    const { user } = renderApp("/users", api);
    await screen.findByRole("cell", { name: "admin@example.com" });
    await user.type(screen.getByLabelText("New user email"), "short@example.com");
    await user.type(screen.getByLabelText("New user password"), "short");
    await user.click(screen.getByRole("button", { name: "Create user" }));
    expect(await screen.findByRole("alert")).toHaveTextContent(
      "password: String should have at least 8 characters",
    );
  });

  it("changes a user's role", async () => {
    const { api } = usersApi(people(1));
    const { user } = renderApp("/users", api);
    const select = await screen.findByRole("combobox", { name: "Role for user1@example.com" });
    await user.selectOptions(select, "admin");
    await waitFor(() => expect(select).toHaveValue("admin"));
    expect(api.callsTo("PATCH", "/users/user-1")[0]?.body).toEqual({ role: "admin" });
  });

  it("deletes a user after confirmation, and not without", async () => {
    const { api } = usersApi(people(2));
    const confirm = vi
      .spyOn(window, "confirm")
      .mockReturnValueOnce(false)
      .mockReturnValueOnce(true);
    const { user } = renderApp("/users", api);
    await screen.findByRole("cell", { name: "user2@example.com" });

    await user.click(screen.getByRole("button", { name: "Delete user2@example.com" }));
    expect(confirm).toHaveBeenCalledTimes(1);
    expect(api.callsTo("DELETE", "/users/user-2")).toHaveLength(0);

    await user.click(screen.getByRole("button", { name: "Delete user2@example.com" }));
    await waitFor(() =>
      expect(screen.queryByRole("cell", { name: "user2@example.com" })).toBeNull(),
    );
    expect(api.callsTo("DELETE", "/users/user-2")).toHaveLength(1);
    expect(within(rowOf("user1@example.com")).getByRole("button")).toHaveAccessibleName(
      "Delete user1@example.com",
    );
  });

  it("says why a delete was refused", async () => {
    const { api } = usersApi([]);
    api.on("DELETE", `/users/${ADMIN.id}`, () =>
      json(400, { detail: "You cannot delete yourself" }),
    );
    vi.spyOn(window, "confirm").mockReturnValue(true);
    const { user } = renderApp("/users", api);
    await screen.findByRole("cell", { name: "admin@example.com" });
    await user.click(screen.getByRole("button", { name: "Delete admin@example.com" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("You cannot delete yourself");
  });
});
