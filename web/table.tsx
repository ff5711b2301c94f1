import type { ComponentChildren } from "preact";

// Lists as tables that scroll inside themselves; sortable headers ask the server.

export interface Column<T> {
  head: string;
  cell: (row: T) => ComponentChildren;
  /** Hidden at phone width. */
  wide?: boolean;
  /** The server's sort key for this column: its header is a button that sorts by it. */
  sort?: string;
}

export interface Sort {
  key: string;
  order: "asc" | "desc";
}

/** The order a header's first click asks: names A to Z, the rest (times, states) highest first. */
const firstOrder = (key: string): Sort["order"] => (key === "name" ? "asc" : "desc");

/** A table that scrolls inside itself, never the page, at phone width; sortable columns sort on the server. */
export function Table<T>(p: {
  rows: T[];
  rowKey: (row: T) => string;
  columns: Column<T>[];
  sort?: Sort;
  onSort?: (s: Sort) => void;
}) {
  return (
    <div class="scroll">
      <table>
        <thead>
          <tr>
            {p.columns.map((c) => {
              const on = c.sort && p.sort?.key === c.sort ? p.sort.order : undefined;
              return (
                <th
                  key={c.head}
                  class={c.wide ? "wide" : undefined}
                  aria-sort={c.sort ? (on === "asc" ? "ascending" : on === "desc" ? "descending" : "none") : undefined}
                >
                  {c.sort && p.onSort ? (
                    <button
                      type="button"
                      class="sort"
                      onClick={() =>
                        p.onSort!({
                          key: c.sort!,
                          order: on ? (on === "asc" ? "desc" : "asc") : firstOrder(c.sort!),
                        })
                      }
                    >
                      {c.head}
                      <span aria-hidden="true">{on === "asc" ? " ▲" : on === "desc" ? " ▼" : ""}</span>
                    </button>
                  ) : (
                    c.head
                  )}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {p.rows.map((r) => (
            <tr key={p.rowKey(r)}>
              {p.columns.map((c) => (
                <td key={c.head} class={c.wide ? "wide" : undefined}>
                  {c.cell(r)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
