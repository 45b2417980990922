/** A failed API call, with a message meant for people. */
export class ApiError extends Error {
  readonly status: number;
  readonly body: unknown;
  readonly retryAfter: number | null;

  constructor(
    status: number,
    message: string,
    body: unknown = null,
    retryAfter: number | null = null,
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

/** status 0: the request never got an answer (network down, server unreachable). */
export const UNREACHABLE = "The server is unreachable";
export const SESSION_EXPIRED = "Your session has expired; please sign in again";

interface ValidationItem {
  msg?: unknown;
  loc?: unknown;
}

/** The words of an error body: `{"detail": "..."}` or FastAPI's 422 `{"detail": [{msg, loc}]}`. */
export function describeDetail(body: unknown): string | null {
  if (typeof body !== "object" || body === null || !("detail" in body)) return null;
  const detail = body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    const lines = detail.map((item: ValidationItem) => {
      const msg = typeof item?.msg === "string" ? item.msg : JSON.stringify(item);
      const loc = Array.isArray(item?.loc) ? item.loc.filter((part) => part !== "body") : [];
      return loc.length > 0 ? `${loc.join(".")}: ${msg}` : msg;
    });
    return lines.join("; ");
  }
  return null;
}

/** Build the ApiError for a non-2xx response. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  let body: unknown = null;
  const text = await response.text().catch(() => "");
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  const header = response.headers.get("Retry-After");
  const retryAfter = header !== null && /^\d+$/.test(header.trim()) ? Number(header) : null;
  const gateway = response.status === 502 || response.status === 503 || response.status === 504;
  const words =
    describeDetail(body) ??
    (gateway ? UNREACHABLE : null) ??
    (response.status >= 500
      ? `The server failed (HTTP ${response.status}); try again shortly`
      : `The request failed (HTTP ${response.status})`);
  return new ApiError(response.status, words, body, retryAfter);
}

/** Words for any error caught in the UI. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof TypeError) return UNREACHABLE; // what fetch throws when there is no answer
  if (error instanceof Error && error.message) return error.message;
  return "Something went wrong";
}
