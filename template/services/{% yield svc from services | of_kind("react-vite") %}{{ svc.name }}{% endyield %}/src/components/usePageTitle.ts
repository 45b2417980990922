import { useEffect } from "react";

/** The project's name, as index.html's <title> carries it. */
export const APP_NAME = typeof document === "undefined" ? "" : document.title;

/** "<page> · <project>" in the browser tab, for screen-reader users and history alike. */
export function usePageTitle(page: string): void {
  useEffect(() => {
    document.title = APP_NAME ? `${page} · ${APP_NAME}` : page;
  }, [page]);
}
