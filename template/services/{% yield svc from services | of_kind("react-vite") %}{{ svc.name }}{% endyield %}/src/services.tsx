import { createContext, useContext, useSyncExternalStore, type ReactNode } from "react";

import type { ApiClient } from "./api/client";

/** What the app needs of an EventSource; tests pass a fake class. */
export interface EventSourceLike {
  readonly readyState: number;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent<string>) => void) | null;
  onerror: ((event: Event) => void) | null;
  close(): void;
}

export type EventSourceConstructor = new (url: string) => EventSourceLike;

export interface Services {
  client: ApiClient;
  EventSource: EventSourceConstructor;
}

const ServicesContext = createContext<Services | null>(null);

export function ServicesProvider({ value, children }: { value: Services; children: ReactNode }) {
  return <ServicesContext.Provider value={value}>{children}</ServicesContext.Provider>;
}

export function useServices(): Services {
  const services = useContext(ServicesContext);
  if (services === null) throw new Error("useServices outside <ServicesProvider>");
  return services;
}

/** The current access token (null when signed out); re-renders when it changes. */
export function useAccessToken(): string | null {
  const { client } = useServices();
  return useSyncExternalStore(
    (onChange) => {
      const unsubscribe = client.onTokenChange(onChange);
      return () => {
        unsubscribe();
      };
    },
    () => client.token,
  );
}
