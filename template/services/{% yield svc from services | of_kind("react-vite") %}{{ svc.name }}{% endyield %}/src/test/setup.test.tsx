import { render, screen } from "@testing-library/react";
import { useEffect, useState } from "react";
import { expect, test } from "vitest";

/** Shows "ready" after `ms` of real time. */
function Late({ ms }: { ms: number }) {
  const [ready, setReady] = useState(false);
  useEffect(() => {
    const timer = setTimeout(() => setReady(true), ms);
    return () => clearTimeout(timer);
  }, [ms]);
  return ready ? <p>ready</p> : null;
}

test("findBy waits longer than Testing Library's 1 s default (setup.ts)", async () => {
  render(<Late ms={1_500} />);
  expect(await screen.findByText("ready")).toBeInTheDocument();
});
