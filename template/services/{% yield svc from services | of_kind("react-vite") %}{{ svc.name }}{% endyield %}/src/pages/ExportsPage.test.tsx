import { act, screen, waitFor, within } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";

import type { ExportJob } from "../api/types";
import type { FakeApi } from "../test/fakes";
import {
  FakeEventSource,
  eventFor,
  json,
  makeJob,
  makeUser,
  renderApp,
  signedInApi,
  ticketHandler,
  tokens,
} from "../test/fakes";

const ALICE = makeUser();
const QUEUED = makeJob({ id: "job-queued", format: "csv" });
const DONE = makeJob({
  id: "job-done",
  format: "json",
  status: "done",
  row_count: 42,
  file_name: "job-done.json",
  file_size: 2048,
  created_at: "2025-01-01T08:00:00Z",
  updated_at: "2025-01-01T08:00:05Z",
});
const FAILED = makeJob({
  id: "job-failed",
  status: "failed",
  error: "database unreachable",
  created_at: "2025-01-01T07:00:00Z",
  updated_at: "2025-01-01T07:00:05Z",
});

function exportsApi(jobs: ExportJob[]): FakeApi {
  return signedInApi(ALICE).on("GET", "/exports", () =>
    json(200, { items: jobs, total: jobs.length, offset: 0, limit: 20 }),
  );
}

function row(jobId: string): HTMLElement {
  const found = screen
    .getAllByTestId("export-row")
    .find((element) => element.dataset.jobId === jobId);
  if (!found) throw new Error(`no row for ${jobId}`);
  return found;
}

/** The app's live stream, once it is open. */
async function stream(): Promise<FakeEventSource> {
  const source = await waitFor(() => {
    const [open] = FakeEventSource.open();
    if (!open) throw new Error("no open EventSource");
    return open;
  });
  act(() => source.connect());
  return source;
}

beforeEach(() => {
  FakeEventSource.reset();
});

describe("My exports", () => {
  it("lists the jobs with format, status, rows, Download when done and the error when failed", async () => {
    renderApp("/exports", exportsApi([QUEUED, DONE, FAILED]));
    expect(
      await screen.findByRole("heading", { level: 1, name: "My exports" }),
    ).toBeInTheDocument();
    await screen.findAllByTestId("export-row");

    expect(screen.getAllByTestId("export-row").map((element) => element.dataset.status)).toEqual([
      "queued",
      "done",
      "failed",
    ]);
    expect(row("job-queued")).toHaveTextContent("csv");
    expect(row("job-queued")).toHaveTextContent("queued");
    expect(within(row("job-queued")).queryByRole("button", { name: "Download" })).toBeNull();
    expect(row("job-done")).toHaveTextContent("json");
    expect(row("job-done")).toHaveTextContent("42");
    expect(within(row("job-done")).getByRole("button", { name: "Download" })).toBeInTheDocument();
    expect(row("job-failed")).toHaveTextContent("database unreachable");
    expect(screen.getByRole("button", { name: "Export CSV" })).toBeEnabled();
    expect(screen.getByRole("button", { name: "Export JSON" })).toBeEnabled();
  });

  it("opens the event stream with a ticket bought with the Bearer header, never the token", async () => {
    const api = exportsApi([]);
    renderApp("/exports", api);
    const source = await stream();
    expect(source.url).toBe("/api/v1/events?ticket=ticket-1");
    expect(source.url).not.toContain("token-1");
    const [ticket] = api.callsTo("POST", "/events/ticket");
    expect(ticket?.headers.get("Authorization")).toBe("Bearer token-1");
    expect(ticket?.url.search).toBe("");
  });

  it("updates a row's status live from server-sent events, and offers Download when done", async () => {
    renderApp("/exports", exportsApi([QUEUED]));
    await screen.findAllByTestId("export-row");
    const source = await stream();

    act(() =>
      source.emit(eventFor(QUEUED, { status: "running", updated_at: "2025-01-02T09:00:01Z" })),
    );
    expect(row("job-queued")).toHaveAttribute("data-status", "running");
    expect(row("job-queued")).toHaveTextContent("running");

    act(() =>
      source.emit(
        eventFor(QUEUED, {
          status: "done",
          row_count: 7,
          file_name: "job-queued.csv",
          file_size: 100,
          updated_at: "2025-01-02T09:00:02Z",
        }),
      ),
    );
    expect(row("job-queued")).toHaveAttribute("data-status", "done");
    expect(row("job-queued")).toHaveTextContent("7");
    expect(within(row("job-queued")).getByRole("button", { name: "Download" })).toBeInTheDocument();

    // A late, older event does not undo the newer state.
    act(() =>
      source.emit(eventFor(QUEUED, { status: "running", updated_at: "2025-01-02T09:00:01Z" })),
    );
    expect(row("job-queued")).toHaveAttribute("data-status", "done");
  });

  it("shows a failure's error as it happens", async () => {
    renderApp("/exports", exportsApi([QUEUED]));
    await screen.findAllByTestId("export-row");
    const source = await stream();
    act(() =>
      source.emit(
        eventFor(QUEUED, {
          status: "failed",
          error: "disk full",
          updated_at: "2025-01-02T09:00:03Z",
        }),
      ),
    );
    expect(row("job-queued")).toHaveAttribute("data-status", "failed");
    expect(row("job-queued")).toHaveTextContent("disk full");
  });

  it("shows a new job at once after the POST, even when its events came first", async () => {
    const created = makeJob({ id: "job-new", format: "json", created_at: "2025-01-03T10:00:00Z" });
    let answer!: () => void;
    const api = exportsApi([QUEUED]).on(
      "POST",
      "/exports",
      () =>
        new Promise<Response>((resolve) => {
          answer = () => resolve(json(202, created));
        }),
    );
    const { user } = renderApp("/exports", api);
    await screen.findAllByTestId("export-row");
    const source = await stream();

    await user.click(screen.getByRole("button", { name: "Export JSON" }));
    expect(api.callsTo("POST", "/exports")[0]?.body).toEqual({ format: "json" });
    // The worker is quick: "running" arrives before the POST's answer.
    act(() =>
      source.emit(eventFor(created, { status: "running", updated_at: "2025-01-03T10:00:01Z" })),
    );
    act(() => answer());

    await waitFor(() =>
      expect(screen.getAllByTestId("export-row").map((element) => element.dataset.jobId)).toEqual([
        "job-new",
        "job-queued",
      ]),
    );
    expect(row("job-new")).toHaveAttribute("data-status", "running");
  });

  it("lists a job that could not be queued as failed and says why", async () => {
    const failed = makeJob({ id: "job-unqueued", status: "failed", error: "broker is off" });
    const api = exportsApi([]).on("POST", "/exports", () =>
      json(503, { detail: "Export could not be queued: broker is off", job: failed }),
    );
    const { user } = renderApp("/exports", api);
    await screen.findByText("No exports yet.");
    await user.click(screen.getByRole("button", { name: "Export CSV" }));

    expect(await screen.findByRole("alert")).toHaveTextContent(
      "Export could not be queued: broker is off",
    );
    expect(row("job-unqueued")).toHaveAttribute("data-status", "failed");
  });

  it("downloads a finished export with the Bearer header and the server's file name", async () => {
    const createObjectURL = vi.spyOn(URL, "createObjectURL").mockReturnValue("blob:export");
    vi.spyOn(URL, "revokeObjectURL").mockImplementation(() => undefined);
    const click = vi
      .spyOn(HTMLAnchorElement.prototype, "click")
      .mockImplementation(() => undefined);
    const api = exportsApi([DONE]).on(
      "GET",
      "/exports/job-done/download",
      () =>
        new Response('[{"id": 1}]', {
          status: 200,
          headers: {
            "Content-Type": "application/json",
            "Content-Disposition": 'attachment; filename="api-export-20250101-080000.json"',
          },
        }),
    );
    const { user } = renderApp("/exports", api);
    await screen.findAllByTestId("export-row");
    await user.click(within(row("job-done")).getByRole("button", { name: "Download" }));

    await waitFor(() => expect(click).toHaveBeenCalledTimes(1));
    const saved = click.mock.contexts[0] as HTMLAnchorElement | undefined;
    expect(saved?.download).toBe("api-export-20250101-080000.json");
    expect(saved?.href).toBe("blob:export");
    expect(createObjectURL).toHaveBeenCalledTimes(1);
    const [call] = api.callsTo("GET", "/exports/job-done/download");
    expect(call?.headers.get("Authorization")).toBe("Bearer token-1");
    expect(screen.queryByRole("alert")).toBeNull();
  });

  it("says why a download failed", async () => {
    const api = exportsApi([DONE]).on("GET", "/exports/job-done/download", () =>
      json(410, { detail: "The export file is gone" }),
    );
    const { user } = renderApp("/exports", api);
    await screen.findAllByTestId("export-row");
    await user.click(within(row("job-done")).getByRole("button", { name: "Download" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("The export file is gone");
  });

  it("reopens the stream with a ticket from the new token after a refresh", async () => {
    let issued = 1;
    const api = exportsApi([QUEUED]).on("POST", "/auth/refresh", () =>
      json(200, tokens(`token-${issued++}`)),
    );
    const { client } = renderApp("/exports", api);
    await screen.findAllByTestId("export-row");
    const first = await stream();
    expect(first.param("ticket")).toBe("ticket-1");

    await act(async () => {
      await client.refresh();
    });
    expect(first.readyState).toBe(2);
    const second = await stream();
    expect(second.param("ticket")).toBe("ticket-2");
    expect(second.url).not.toContain("token-");
    const bought = api.callsTo("POST", "/events/ticket").at(-1);
    expect(bought?.headers.get("Authorization")).toBe("Bearer token-2");
    // Reopened after a break: the list is read again, for events missed meanwhile.
    await waitFor(() => expect(api.callsTo("GET", "/exports")).toHaveLength(2));
  });

  it("reconnects a broken stream with a fresh ticket and the last event id", async () => {
    const api = exportsApi([QUEUED]);
    renderApp("/exports", api);
    await screen.findAllByTestId("export-row");
    const first = await stream();
    act(() =>
      first.emit(eventFor(QUEUED, { status: "running", updated_at: "2025-01-02T09:00:01Z" })),
    );
    expect(first.param("last_event_id")).toBeNull();

    vi.useFakeTimers();
    try {
      act(() => first.drop()); // the browser would retry ticket-1, which is spent
      expect(first.readyState).toBe(2); // closed by the app, not left to retry
      expect(screen.getByText(/reconnecting/)).toBeInTheDocument();
      await act(async () => {
        await vi.advanceTimersByTimeAsync(1000);
      });
    } finally {
      vi.useRealTimers();
    }
    const second = await stream();
    expect(second.param("ticket")).toBe("ticket-2");
    expect(second.param("last_event_id")).toBe("2025-01-02T09:00:01Z");
    expect(api.callsTo("POST", "/events/ticket")).toHaveLength(2); // one per connection
    expect(FakeEventSource.open()).toEqual([second]);
    expect(screen.queryByText(/reconnecting/)).toBeNull();
  });

  it("backs off while no ticket can be had, then connects", async () => {
    let refusals = 0;
    const tickets = ticketHandler();
    const api = exportsApi([QUEUED]).on("POST", "/events/ticket", (call) =>
      refusals-- > 0 ? json(503, { detail: "Service unavailable" }) : tickets(call),
    );
    renderApp("/exports", api);
    await screen.findAllByTestId("export-row");
    const first = await stream();
    const attempts = () => api.callsTo("POST", "/events/ticket").length;

    vi.useFakeTimers();
    try {
      const advance = async (ms: number) => {
        await act(async () => {
          await vi.advanceTimersByTimeAsync(ms);
        });
      };
      refusals = 2;
      act(() => first.drop());
      await advance(999);
      expect(attempts()).toBe(1);
      await advance(1); // 1 s after the break: refused
      expect(attempts()).toBe(2);
      await advance(1999);
      expect(attempts()).toBe(2);
      await advance(1); // 2 s after that: refused
      expect(attempts()).toBe(3);
      await advance(3999);
      expect(attempts()).toBe(3);
      expect(FakeEventSource.open()).toEqual([]);
      await advance(1); // 4 s after that: a ticket
      expect(attempts()).toBe(4);
    } finally {
      vi.useRealTimers();
    }
    const second = await stream();
    expect(second.param("ticket")).toBe("ticket-2");
  });

  it("refreshes the token when a ticket is refused for it, then reconnects", async () => {
    let issued = 1;
    const tickets = ticketHandler();
    const api = exportsApi([QUEUED])
      .on("POST", "/auth/refresh", () => json(200, tokens(`token-${issued++}`)))
      .on("POST", "/events/ticket", (call) =>
        call.headers.get("Authorization") === "Bearer token-1" &&
        api.callsTo("POST", "/events/ticket").length > 1
          ? json(401, { detail: "Token expired" }, { "WWW-Authenticate": "Bearer" })
          : tickets(call),
      );
    renderApp("/exports", api);
    await screen.findAllByTestId("export-row");
    const first = await stream();
    vi.useFakeTimers();
    try {
      act(() => first.drop()); // e.g. the server ended it: the access token expired
      await act(async () => {
        await vi.advanceTimersByTimeAsync(1000);
      });
    } finally {
      vi.useRealTimers();
    }
    const second = await stream();
    expect(api.callsTo("POST", "/auth/refresh")).toHaveLength(2); // the page load's, then this
    const bought = api.callsTo("POST", "/events/ticket").at(-1);
    expect(bought?.headers.get("Authorization")).toBe("Bearer token-2");
    expect(second.url).not.toContain("token-");
  });

  it("stops and signs out when the session is over", async () => {
    const api = exportsApi([QUEUED]).on("POST", "/events/ticket", () =>
      json(401, { detail: "Token expired" }, { "WWW-Authenticate": "Bearer" }),
    );
    let refreshes = 0;
    api.on("POST", "/auth/refresh", () =>
      refreshes++ === 0
        ? json(200, tokens("token-1"))
        : json(401, { detail: "Invalid or expired refresh token" }),
    );
    renderApp("/exports", api);
    await waitFor(() => expect(screen.getByTestId("location")).toHaveTextContent("/login"));
    expect(FakeEventSource.instances).toEqual([]);
  });
});
