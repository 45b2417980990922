import { useEffect, useRef, useState } from "react";

import { useAccessToken, useServices, type EventSourceLike } from "../services";
import type { JobEvent } from "./types";

const MAX_DELAY_MS = 30_000;

export type LiveState = "connecting" | "live" | "reconnecting";

interface Handlers {
  onEvent(event: JobEvent): void;
  /** The stream opened again after a break: events may have been missed. */
  onReconnect(): void;
}

/** The wait before the next attempt after `failures` attempts in a row: 1 s, 2 s, 4 s… 30 s. */
export function backoff(failures: number): number {
  return Math.min(MAX_DELAY_MS, 1000 * 2 ** failures);
}

/**
 * Live export-job events from /api/v1/events over EventSource.
 *
 * Each connection opens with a fresh single-use ticket (client.eventsUrl),
 * so the browser's own reconnect, which reuses the URL, would be refused:
 * on any error this hook closes the stream itself and opens a new one with a
 * new ticket and the id of the last event seen (the server replays what
 * changed meanwhile), backing off while that fails. The server also ends a
 * stream when the session behind it expires; the same path reconnects it.
 * A new access token (after a refresh) reopens the stream too. A ticket
 * request that finds the session over signs the user out (the client ends
 * the session), which stops this hook.
 */
export function useJobEvents(handlers: Handlers): LiveState {
  const { client, EventSource } = useServices();
  const token = useAccessToken();
  const [state, setState] = useState<LiveState>("connecting");
  const latest = useRef(handlers);
  const hasOpened = useRef(false);
  // Kept across token changes: a reopen after a refresh replays from here too.
  const lastEventId = useRef<string | null>(null);

  useEffect(() => {
    latest.current = handlers;
  });

  useEffect(() => {
    if (token === null) return undefined;
    let stopped = false;
    let failures = 0;
    let source: EventSourceLike | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;

    const close = () => {
      if (source === null) return;
      source.onopen = source.onmessage = source.onerror = null;
      source.close();
      source = null;
    };

    const retryLater = () => {
      setState("reconnecting");
      timer = setTimeout(() => void connect(), backoff(failures));
      failures += 1;
    };

    const listen = (opened: EventSourceLike) => {
      opened.onopen = () => {
        failures = 0;
        setState("live");
        if (hasOpened.current) latest.current.onReconnect();
        hasOpened.current = true;
      };
      opened.onmessage = (message) => {
        if (message.lastEventId) lastEventId.current = message.lastEventId;
        const event = parseEvent(message.data);
        if (event) latest.current.onEvent(event);
      };
      opened.onerror = () => {
        close();
        retryLater();
      };
    };

    const connect = async () => {
      let url: string;
      try {
        url = await client.eventsUrl(lastEventId.current);
      } catch {
        if (!stopped) retryLater(); // unreachable, or refused: try again later
        return;
      }
      if (stopped) return;
      source = new EventSource(url);
      listen(source);
    };

    void connect();
    return () => {
      stopped = true;
      clearTimeout(timer);
      close();
    };
  }, [client, EventSource, token]);

  return state;
}

function parseEvent(data: string): JobEvent | null {
  try {
    const event = JSON.parse(data) as JobEvent;
    return event && typeof event.job_id === "string" ? event : null;
  } catch {
    return null; // not one of ours
  }
}
