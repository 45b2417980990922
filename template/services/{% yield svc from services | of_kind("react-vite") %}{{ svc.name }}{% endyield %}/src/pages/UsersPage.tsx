import { useEffect, useState, type FormEvent } from "react";

import { ApiError, messageOf } from "../api/errors";
import type { NewUser, Page, Role, User } from "../api/types";
import { useAuth } from "../auth/AuthContext";
import { Pagination, pageCount } from "../components/Pagination";
import { usePageTitle } from "../components/usePageTitle";
import { useServices } from "../services";

export const USERS_PAGE_SIZE = 10;
export const NO_ACCESS = "You do not have access to this page";
export const EMAIL_TAKEN = "A user with this email exists";

const ROLES: Role[] = ["user", "admin"];

function Forbidden() {
  usePageTitle("No access");
  return (
    <>
      <h1>No access</h1>
      <p role="alert" className="error">
        {NO_ACCESS}
      </p>
    </>
  );
}

/** /users: administrators list, create, re-role and delete users. */
export function UsersPage() {
  const { user } = useAuth();
  if (user?.role !== "admin") return <Forbidden />;
  return <UserAdmin me={user} />;
}

function UserAdmin({ me }: { me: User }) {
  usePageTitle("Users");
  const { client } = useServices();
  const { reloadUser } = useAuth();
  const [users, setUsers] = useState<User[] | null>(null);
  const [total, setTotal] = useState(0);
  const [page, setPage] = useState(1);
  const [reloads, setReloads] = useState(0);
  const [forbidden, setForbidden] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<string | null>(null);

  useEffect(() => {
    const controller = new AbortController();
    client
      .request<Page<User>>("/users", {
        query: { offset: (page - 1) * USERS_PAGE_SIZE, limit: USERS_PAGE_SIZE },
        signal: controller.signal,
      })
      .then((result) => {
        const pages = pageCount(result.total, USERS_PAGE_SIZE);
        if (result.items.length === 0 && page > pages) {
          setPage(pages); // the last page emptied (users deleted): show the one before
          return;
        }
        setUsers(result.items);
        setTotal(result.total);
      })
      .catch((caught: unknown) => {
        if (controller.signal.aborted) return;
        if (caught instanceof ApiError && caught.status === 403) setForbidden(true);
        else setError(`Could not load the users: ${messageOf(caught)}`);
      });
    return () => controller.abort();
  }, [client, page, reloads]);

  if (forbidden) return <Forbidden />;

  const reload = () => setReloads((count) => count + 1);

  const onCreated = (newTotal: number) => {
    setError(null);
    setMessage("User created");
    // Users are listed oldest first: the new one is on the last page.
    const last = pageCount(newTotal, USERS_PAGE_SIZE);
    if (last !== page) setPage(last);
    else reload();
  };

  const changeRole = async (target: User, role: Role) => {
    setError(null);
    setMessage(null);
    try {
      const updated = await client.request<User>(`/users/${target.id}`, {
        method: "PATCH",
        body: { role },
      });
      setUsers((current) => current?.map((u) => (u.id === updated.id ? updated : u)) ?? current);
      setMessage(`Role changed to ${updated.role}`);
      if (updated.id === me.id) await reloadUser();
    } catch (caught) {
      setError(`Could not change the role: ${messageOf(caught)}`);
    }
  };

  const remove = async (target: User) => {
    if (!window.confirm(`Delete ${target.email}? This cannot be undone.`)) return;
    setError(null);
    setMessage(null);
    try {
      await client.request<undefined>(`/users/${target.id}`, { method: "DELETE" });
      setMessage("User deleted");
      reload();
    } catch (caught) {
      setError(`Could not delete the user: ${messageOf(caught)}`);
    }
  };

  const pages = pageCount(total, USERS_PAGE_SIZE);

  return (
    <>
      <h1>Users</h1>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {message && (
        <p role="status" className="success">
          {message}
        </p>
      )}
      {users === null ? (
        !error && <p role="status">Loading users…</p>
      ) : (
        <>
          <table>
            <caption className="visually-hidden">Users, oldest first</caption>
            <thead>
              <tr>
                <th scope="col">Email</th>
                <th scope="col">Full name</th>
                <th scope="col">Role</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.map((user) => (
                <tr key={user.id} data-testid="user-row" data-user-id={user.id}>
                  <td>{user.email}</td>
                  <td>{user.full_name ?? ""}</td>
                  <td>
                    <select
                      aria-label={`Role for ${user.email}`}
                      value={user.role}
                      onChange={(event) => void changeRole(user, event.target.value as Role)}
                    >
                      {ROLES.map((role) => (
                        <option key={role} value={role}>
                          {role}
                        </option>
                      ))}
                    </select>
                  </td>
                  {/* Named, so that this cell's name is not "Delete <email>" (which would
                      make the email's own cell ambiguous to a search by name). */}
                  <td aria-label="Actions">
                    <button
                      type="button"
                      className="danger"
                      aria-label={`Delete ${user.email}`}
                      onClick={() => void remove(user)}
                    >
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pagination page={page} pages={pages} onPage={setPage} label="User pages" />
        </>
      )}
      <CreateUserForm total={total} onCreated={onCreated} />
    </>
  );
}

function CreateUserForm({
  total,
  onCreated,
}: {
  total: number;
  onCreated: (newTotal: number) => void;
}) {
  const { client } = useServices();
  const [email, setEmail] = useState("");
  const [fullName, setFullName] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<Role>("user");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const onSubmit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const body: NewUser = { email: email.trim(), password, role };
    if (fullName.trim()) body.full_name = fullName.trim();
    try {
      await client.request<User>("/users", { method: "POST", body });
      setEmail("");
      setFullName("");
      setPassword("");
      setRole("user");
      onCreated(total + 1);
    } catch (caught) {
      setError(
        caught instanceof ApiError && caught.status === 409 ? EMAIL_TAKEN : messageOf(caught),
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="create-user-heading">
      <h2 id="create-user-heading">Create a user</h2>
      <form
        className="stack"
        onSubmit={(event) => void onSubmit(event)}
        noValidate
        aria-busy={busy}
      >
        <div className="field">
          <label htmlFor="new-user-email">New user email</label>
          <input
            id="new-user-email"
            type="email"
            autoComplete="off"
            required
            value={email}
            onChange={(event) => setEmail(event.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="new-user-full-name">New user full name</label>
          <input
            id="new-user-full-name"
            type="text"
            autoComplete="off"
            value={fullName}
            onChange={(event) => setFullName(event.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="new-user-password">New user password</label>
          <input
            id="new-user-password"
            type="password"
            autoComplete="new-password"
            required
            minLength={8}
            aria-describedby="new-user-password-hint"
            value={password}
            onChange={(event) => setPassword(event.target.value)}
          />
          <small id="new-user-password-hint">At least 8 characters.</small>
        </div>
        <div className="field">
          <label htmlFor="new-user-role">New user role</label>
          <select
            id="new-user-role"
            value={role}
            onChange={(event) => setRole(event.target.value as Role)}
          >
            {ROLES.map((option) => (
              <option key={option} value={option}>
                {option}
              </option>
            ))}
          </select>
        </div>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Create user
        </button>
      </form>
    </section>
  );
}
