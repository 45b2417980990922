import { NavLink, Outlet, useNavigate } from "react-router";

import { useAuth } from "../auth/AuthContext";
import { APP_NAME } from "./usePageTitle";

/** The frame of every signed-in page: main navigation, who is signed in, "Log out". */
export function Layout() {
  const { user, logout } = useAuth();
  const navigate = useNavigate();

  const onLogout = async () => {
    await logout();
    await navigate("/login", { replace: true });
  };

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="site-header">
        <p className="brand">{APP_NAME}</p>
        <nav aria-label="Main">
          <ul>
            <li>
              <NavLink to="/exports">My exports</NavLink>
            </li>
            {user?.role === "admin" && (
              <li>
                <NavLink to="/users">Users</NavLink>
              </li>
            )}
          </ul>
        </nav>
        <div className="account">
          <span>
            Signed in as <strong data-testid="current-user-email">{user?.email}</strong>
          </span>
          <button type="button" onClick={() => void onLogout()}>
            Log out
          </button>
        </div>
      </header>
      <main id="main" className="page" tabIndex={-1}>
        <Outlet />
      </main>
    </>
  );
}
