import { useState, type FormEvent } from "react";
import { Navigate, useLocation, useNavigate, type Location } from "react-router";

import { ApiError, messageOf } from "../api/errors";
import { useAuth } from "../auth/AuthContext";
import { usePageTitle } from "../components/usePageTitle";

export const BAD_CREDENTIALS = "Incorrect email or password";

/** Words for a failed sign-in. */
export function loginErrorMessage(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 401) return BAD_CREDENTIALS;
    if (error.status === 429) {
      return error.retryAfter === null
        ? "Too many attempts, try again later"
        : `Too many attempts, try again in ${error.retryAfter} s`;
    }
  }
  return messageOf(error);
}

/** Where to go after signing in: the page that sent us here, else /exports. */
function destination(location: Location): string {
  const from = (location.state as { from?: Partial<Location> } | null)?.from;
  if (!from?.pathname || from.pathname === "/login") return "/exports";
  return `${from.pathname}${from.search ?? ""}${from.hash ?? ""}`;
}

export function LoginPage() {
  usePageTitle("Sign in");
  const { status, notice, login } = useAuth();
  const location = useLocation();
  const navigate = useNavigate();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  if (status === "signedIn" && !busy) return <Navigate to={destination(location)} replace />;

  const onSubmit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    if (!email.trim() || !password) {
      setError("Enter your email and password");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await login(email.trim(), password);
      await navigate(destination(location), { replace: true });
    } catch (caught) {
      setError(loginErrorMessage(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" className="page login-page">
      <h1>Sign in</h1>
      {notice && !error && <p role="status">{notice}</p>}
      <form
        className="stack"
        onSubmit={(event) => void onSubmit(event)}
        noValidate
        aria-busy={busy}
      >
        <div className="field">
          <label htmlFor="login-email">Email</label>
          <input
            id="login-email"
            name="email"
            type="email"
            autoComplete="username"
            required
            value={email}
            onChange={(event) => setEmail(event.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor="login-password">Password</label>
          <input
            id="login-password"
            name="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(event) => setPassword(event.target.value)}
          />
        </div>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
    </main>
  );
}
