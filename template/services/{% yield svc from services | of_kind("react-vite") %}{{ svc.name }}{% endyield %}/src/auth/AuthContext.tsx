import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useState,
  type ReactNode,
} from "react";

import { SESSION_EXPIRED, messageOf } from "../api/errors";
import type { User } from "../api/types";
import { useServices } from "../services";

export type AuthStatus = "loading" | "signedIn" | "signedOut";

export interface Auth {
  status: AuthStatus;
  user: User | null;
  /** Why the user is signed out, when that was not their choice (shown on the sign-in page). */
  notice: string | null;
  /** The user pressed "Log out" (so the next sign-in starts afresh, not on their last page). */
  signedOutByUser: boolean;
  login: (email: string, password: string) => Promise<void>;
  logout: () => Promise<void>;
  /** Read /users/me again (after the user's own record changed). */
  reloadUser: () => Promise<void>;
}

interface State {
  status: AuthStatus;
  user: User | null;
  notice: string | null;
  signedOutByUser: boolean;
}

const AuthContext = createContext<Auth | null>(null);

export function AuthProvider({ children }: { children: ReactNode }) {
  const { client } = useServices();
  const [state, setState] = useState<State>({
    status: "loading",
    user: null,
    notice: null,
    signedOutByUser: false,
  });

  // A reload loses the in-memory access token: get a new one from the refresh
  // cookie, so the user stays signed in. Under StrictMode this runs twice; the
  // client's single-flight refresh makes that one request.
  useEffect(() => {
    let cancelled = false;
    const restore = async (): Promise<State> => {
      try {
        const token = await client.refresh();
        if (token === null) {
          return { status: "signedOut", user: null, notice: null, signedOutByUser: false };
        }
        const user = await client.request<User>("/users/me");
        return { status: "signedIn", user, notice: null, signedOutByUser: false };
      } catch (error) {
        return {
          status: "signedOut",
          user: null,
          notice: messageOf(error),
          signedOutByUser: false,
        };
      }
    };
    void restore().then((restored) => {
      if (!cancelled) setState((current) => (current.status === "loading" ? restored : current));
    });
    return () => {
      cancelled = true;
    };
  }, [client]);

  // The server refused a refresh: the session is over, whatever page we are on.
  useEffect(
    () =>
      client.onSessionEnd(() => {
        setState((current) => ({
          status: "signedOut",
          user: null,
          notice: current.status === "signedIn" ? SESSION_EXPIRED : current.notice,
          signedOutByUser: false,
        }));
      }),
    [client],
  );

  const login = useCallback(
    async (email: string, password: string) => {
      await client.login(email, password);
      const user = await client.request<User>("/users/me");
      setState({ status: "signedIn", user, notice: null, signedOutByUser: false });
    },
    [client],
  );

  const logout = useCallback(async () => {
    let notice: string | null = null;
    try {
      await client.logout();
    } catch (error) {
      notice = `Signed out in this browser, but the server did not confirm it: ${messageOf(error)}`;
    }
    setState({ status: "signedOut", user: null, notice, signedOutByUser: true });
  }, [client]);

  const reloadUser = useCallback(async () => {
    const user = await client.request<User>("/users/me");
    setState((current) => (current.status === "signedIn" ? { ...current, user } : current));
  }, [client]);

  const value = useMemo<Auth>(
    () => ({ ...state, login, logout, reloadUser }),
    [state, login, logout, reloadUser],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): Auth {
  const auth = useContext(AuthContext);
  if (auth === null) throw new Error("useAuth outside <AuthProvider>");
  return auth;
}
