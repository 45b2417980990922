import { useEffect, useRef, useState } from "react";

import { useAccessToken, useServices } from "../services";
import type { JobEvent } from "./types";

const CLOSED = 2; // EventSource.CLOSED
const MAX_DELAY_MS = 30_000;

export type LiveState = "connecting" | "live" | "reconnecting";

interface Handlers {
  onEvent(event: JobEvent): void;
  /** The stream opened again after a break: events may have been missed. */
  onReconnect(): void;
}

/**
 * Live export-job events from /api/v1/events over EventSource.
 *
 * EventSource cannot send an Authorization header, so the access token goes
 * in the URL; a new token (after a refresh) closes the stream and opens a new
 * one. The browser reconnects by itself after a network break; a refusal
 * (most likely an expired token) closes the stream for good, so this hook
 * refreshes the token, which reopens it, backing off while that fails.
 */
export function useJobEvents(handlers: Handlers): LiveState {
  const { client, EventSource } = useServices();
  const token = useAccessToken();
  const [state, setState] = useState<LiveState>("connecting");
  const latest = useRef(handlers);
  const hasOpened = useRef(false);
  const failures = useRef(0);

  useEffect(() => {
    latest.current = handlers;
  });

  useEffect(() => {
    if (token === null) return undefined;
    const source = new EventSource(client.eventsUrl(token));
    let timer: ReturnType<typeof setTimeout> | undefined;

    const retry = () => {
      const delay = Math.min(MAX_DELAY_MS, 1000 * 2 ** failures.current);
      failures.current += 1;
      timer = setTimeout(() => {
        // A new token re-runs this effect; null (refused) means signed out.
        client.refresh().catch(retry);
      }, delay);
    };

    source.onopen = () => {
      failures.current = 0;
      setState("live");
      if (hasOpened.current) latest.current.onReconnect();
      hasOpened.current = true;
    };
    source.onmessage = (message) => {
      let event: JobEvent;
      try {
        event = JSON.parse(message.data) as JobEvent;
      } catch {
        return; // not one of ours
      }
      if (event && typeof event.job_id === "string") latest.current.onEvent(event);
    };
    source.onerror = () => {
      setState("reconnecting");
      if (source.readyState === CLOSED) retry();
    };
    return () => {
      clearTimeout(timer);
      source.onopen = source.onmessage = source.onerror = null;
      source.close();
    };
  }, [client, EventSource, token]);

  return state;
}
