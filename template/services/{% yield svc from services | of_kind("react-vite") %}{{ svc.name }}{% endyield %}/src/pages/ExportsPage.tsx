import { useCallback, useEffect, useMemo, useRef, useState } from "react";

import { ApiError, errorFromResponse, messageOf } from "../api/errors";
import type { ExportFormat, ExportJob, JobEvent, Page } from "../api/types";
import { useJobEvents } from "../api/useJobEvents";
import { Pagination, pageCount } from "../components/Pagination";
import { usePageTitle } from "../components/usePageTitle";
import { fileNameFrom, saveBlob } from "../download";
import { useServices } from "../services";

export const EXPORTS_PAGE_SIZE = 20;
/** How long to wait before reloading the list for an event about a job it does not show. */
const UNKNOWN_JOB_RELOAD_MS = 1000;

const FORMATS: { format: ExportFormat; label: string }[] = [
  { format: "csv", label: "Export CSV" },
  { format: "json", label: "Export JSON" },
];

function instant(iso: string): number {
  const time = Date.parse(iso);
  return Number.isNaN(time) ? 0 : time;
}

/** The job as the event describes it, unless the job already carries a later state. */
function withEvent(job: ExportJob, event: JobEvent | undefined): ExportJob {
  if (!event || instant(event.updated_at) < instant(job.updated_at)) return job;
  return {
    ...job,
    status: event.status,
    row_count: event.row_count,
    file_name: event.file_name,
    file_size: event.file_size,
    error: event.error,
    updated_at: event.updated_at,
  };
}

function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

function formatSize(bytes: number | null): string {
  if (bytes === null) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function isUnavailable(body: unknown): body is { detail: string; job: ExportJob } {
  return typeof body === "object" && body !== null && "job" in body && "detail" in body;
}

export function ExportsPage() {
  usePageTitle("My exports");
  const { client } = useServices();
  const [listed, setListed] = useState<ExportJob[] | null>(null);
  const [total, setTotal] = useState(0);
  const [page, setPage] = useState(1);
  const [reloads, setReloads] = useState(0);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [creating, setCreating] = useState<ExportFormat | null>(null);
  // The latest event of every job seen on the stream, also of jobs not listed
  // yet: an event can overtake the answer to the POST that created its job.
  const [events, setEvents] = useState<Record<string, JobEvent>>({});
  const shownIds = useRef(new Set<string>());
  const reloadTimer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  const reload = useCallback(() => setReloads((count) => count + 1), []);

  useEffect(() => {
    const controller = new AbortController();
    client
      .request<Page<ExportJob>>("/exports", {
        query: { offset: (page - 1) * EXPORTS_PAGE_SIZE, limit: EXPORTS_PAGE_SIZE },
        signal: controller.signal,
      })
      .then((result) => {
        setListed(result.items);
        setTotal(result.total);
        setLoadError(null);
      })
      .catch((error: unknown) => {
        if (!controller.signal.aborted)
          setLoadError(`Could not load your exports: ${messageOf(error)}`);
      });
    return () => controller.abort();
  }, [client, page, reloads]);

  useEffect(() => () => clearTimeout(reloadTimer.current), []);

  const jobs = useMemo(
    () => listed?.map((job) => withEvent(job, events[job.id])) ?? null,
    [listed, events],
  );

  useEffect(() => {
    shownIds.current = new Set(jobs?.map((job) => job.id));
  }, [jobs]);

  const live = useJobEvents({
    onEvent(event) {
      setEvents((current) => {
        const previous = current[event.job_id];
        if (previous && instant(previous.updated_at) > instant(event.updated_at)) return current;
        return { ...current, [event.job_id]: event };
      });
      // A job this page does not show yet (created in another tab, say): reload
      // the first page, once the burst of events is over.
      if (page === 1 && !shownIds.current.has(event.job_id)) {
        clearTimeout(reloadTimer.current);
        reloadTimer.current = setTimeout(() => {
          if (!shownIds.current.has(event.job_id)) reload();
        }, UNKNOWN_JOB_RELOAD_MS);
      }
    },
    onReconnect: reload,
  });

  const addJob = (job: ExportJob) => {
    shownIds.current.add(job.id);
    if (page !== 1) {
      setPage(1);
      return;
    }
    setListed((current) =>
      current === null || current.some((listedJob) => listedJob.id === job.id)
        ? current
        : [job, ...current].slice(0, EXPORTS_PAGE_SIZE),
    );
    setTotal((count) => count + 1);
  };

  const create = async (format: ExportFormat) => {
    setCreating(format);
    setActionError(null);
    try {
      addJob(await client.request<ExportJob>("/exports", { method: "POST", body: { format } }));
    } catch (error) {
      // 503: the job exists but could not be queued; it is listed as failed.
      if (error instanceof ApiError && isUnavailable(error.body)) addJob(error.body.job);
      setActionError(messageOf(error));
    } finally {
      setCreating(null);
    }
  };

  const download = async (job: ExportJob) => {
    setActionError(null);
    try {
      const response = await client.send(`/exports/${job.id}/download`);
      if (!response.ok) throw await errorFromResponse(response);
      const blob = await response.blob();
      const name =
        fileNameFrom(response.headers.get("Content-Disposition")) ??
        `export-${job.id}.${job.format}`;
      saveBlob(blob, name);
    } catch (error) {
      setActionError(`The download failed: ${messageOf(error)}`);
    }
  };

  const pages = pageCount(total, EXPORTS_PAGE_SIZE);

  return (
    <>
      <h1>My exports</h1>
      <p>
        Export the users table as a file. Jobs run in the background; their status updates here
        live.
      </p>
      <div className="actions">
        {FORMATS.map(({ format, label }) => (
          <button
            key={format}
            type="button"
            onClick={() => void create(format)}
            disabled={creating !== null}
          >
            {label}
          </button>
        ))}
      </div>
      {actionError && (
        <p role="alert" className="error">
          {actionError}
        </p>
      )}
      {loadError && (
        <p role="alert" className="error">
          {loadError}
        </p>
      )}
      {live === "reconnecting" && (
        <p className="muted">Live updates are interrupted; reconnecting…</p>
      )}
      {jobs === null ? (
        !loadError && <p role="status">Loading exports…</p>
      ) : jobs.length === 0 ? (
        <p>No exports yet.</p>
      ) : (
        <>
          <table>
            <caption className="visually-hidden">Your export jobs, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Format</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Rows</th>
                <th scope="col">File</th>
              </tr>
            </thead>
            <tbody>
              {jobs.map((job) => (
                <tr
                  key={job.id}
                  data-testid="export-row"
                  data-job-id={job.id}
                  data-status={job.status}
                >
                  <td>{job.format}</td>
                  <td>
                    <span className={`status status-${job.status}`}>{job.status}</span>
                  </td>
                  <td>
                    <time dateTime={job.created_at}>{formatTime(job.created_at)}</time>
                  </td>
                  <td>{job.row_count ?? "—"}</td>
                  <td>
                    {job.status === "done" && (
                      <>
                        <button type="button" onClick={() => void download(job)}>
                          Download
                        </button>{" "}
                        <span className="muted">{formatSize(job.file_size)}</span>
                      </>
                    )}
                    {job.status === "failed" && (
                      <span className="error">{job.error ?? "The export failed"}</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {pages > 1 && (
            <Pagination page={page} pages={pages} onPage={setPage} label="Export pages" />
          )}
        </>
      )}
    </>
  );
}
