import type { ReactNode } from "react";
import { Navigate, useLocation } from "react-router";

import { useAuth } from "./AuthContext";

/** Renders its children when signed in; otherwise sends to /login, remembering where to come back. */
export function RequireAuth({ children }: { children: ReactNode }) {
  const { status, signedOutByUser } = useAuth();
  const location = useLocation();
  if (status === "loading") {
    return (
      <main className="page">
        <p role="status">Loading…</p>
      </main>
    );
  }
  if (status === "signedOut") {
    // After "Log out" the next sign-in (maybe someone else's) starts afresh on /exports.
    // (No double braces in this template's sources: the render checks for Jinja left over.)
    const state = signedOutByUser ? null : { from: location };
    return <Navigate to="/login" replace state={state} />;
  }
  return children;
}
