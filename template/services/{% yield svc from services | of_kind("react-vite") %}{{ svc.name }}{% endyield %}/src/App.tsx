import { useState } from "react";
import { Navigate, Route, Routes } from "react-router";

import { ApiClient } from "./api/client";
import { AuthProvider } from "./auth/AuthContext";
import { RequireAuth } from "./auth/RequireAuth";
import { Layout } from "./components/Layout";
import { ExportsPage } from "./pages/ExportsPage";
import { LoginPage } from "./pages/LoginPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { UsersPage } from "./pages/UsersPage";
import { ServicesProvider, type EventSourceConstructor, type Services } from "./services";

export interface AppProps {
  /** Defaults to a client over the global fetch. */
  client?: ApiClient;
  /** Defaults to the browser's EventSource. */
  eventSource?: EventSourceConstructor;
}

/** The routes, inside a router the caller provides (BrowserRouter; MemoryRouter in tests). */
export function App({ client, eventSource }: AppProps) {
  const [services] = useState<Services>(() => ({
    client: client ?? new ApiClient(),
    EventSource: eventSource ?? window.EventSource,
  }));
  return (
    <ServicesProvider value={services}>
      <AuthProvider>
        <Routes>
          <Route path="/login" element={<LoginPage />} />
          <Route
            element={
              <RequireAuth>
                <Layout />
              </RequireAuth>
            }
          >
            <Route index element={<Navigate to="/exports" replace />} />
            <Route path="exports" element={<ExportsPage />} />
            <Route path="users" element={<UsersPage />} />
            <Route path="*" element={<NotFoundPage />} />
          </Route>
        </Routes>
      </AuthProvider>
    </ServicesProvider>
  );
}
