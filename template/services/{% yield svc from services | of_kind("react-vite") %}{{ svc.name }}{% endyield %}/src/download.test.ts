import { describe, expect, it } from "vitest";

import { fileNameFrom } from "./download";

describe("fileNameFrom", () => {
  it("reads the quoted, bare and RFC 5987 forms", () => {
    expect(fileNameFrom('attachment; filename="api-export-1.csv"')).toBe("api-export-1.csv");
    expect(fileNameFrom("attachment; filename=api-export-1.json")).toBe("api-export-1.json");
    expect(fileNameFrom("attachment; filename*=utf-8''caf%C3%A9.csv; filename=\"cafe.csv\"")).toBe(
      "café.csv",
    );
  });

  it("has nothing without a file name", () => {
    expect(fileNameFrom(null)).toBeNull();
    expect(fileNameFrom("inline")).toBeNull();
  });
});
