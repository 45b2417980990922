import "@testing-library/jest-dom/vitest";
import { cleanup, configure } from "@testing-library/react";
import { afterEach } from "vitest";

// findBy* and waitFor poll for up to 1 s by default: too tight on a loaded 2-core
// runner, where a render after a fetch was seen to take longer. 5 s stays well
// under vitest's testTimeout (vite.config.ts), so a wait that never succeeds fails
// with Testing Library's message (what it looked for, the DOM) and not a bare timeout.
const ASYNC_UTIL_TIMEOUT_MS = 5_000;
configure({ asyncUtilTimeout: ASYNC_UTIL_TIMEOUT_MS });

afterEach(() => {
  cleanup();
});
