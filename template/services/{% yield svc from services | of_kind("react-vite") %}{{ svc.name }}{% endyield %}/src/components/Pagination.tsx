interface Props {
  /** 1-based. */
  page: number;
  pages: number;
  onPage: (page: number) => void;
  label: string;
}

/** "Previous" / "Page X of Y" / "Next". */
export function Pagination({ page, pages, onPage, label }: Props) {
  return (
    <nav className="pagination" aria-label={label}>
      <button type="button" onClick={() => onPage(page - 1)} disabled={page <= 1}>
        Previous
      </button>
      <span aria-live="polite">
        Page {page} of {pages}
      </span>
      <button type="button" onClick={() => onPage(page + 1)} disabled={page >= pages}>
        Next
      </button>
    </nav>
  );
}

export function pageCount(total: number, pageSize: number): number {
  return Math.max(1, Math.ceil(total / pageSize));
}
