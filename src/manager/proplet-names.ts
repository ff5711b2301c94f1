import { type Proplet, propletName } from "../core/proplet.ts";

// Proplets' names, unique across the registry (manager/proplets.ts) and the identities: a provisioned proplet goes
// by its identity's name, the others by a name made from their id, and a name or an id stands for one proplet
// only. Apart from the registry's core (heartbeats, liveness, load) so that the naming rules change here only.

/**
 * The names operators gave proplets' identities (manager/identities.ts): a provisioned proplet goes by its
 * identity's name, in every view and wherever a proplet id is taken; the others by a name made from their id.
 */
export interface IdentityNames {
  /** The name of the live proplet identity with this id. */
  propletName(id: string): string | undefined;
  /** The id of the live identity with this name. */
  named(name: string): string | undefined;
}

export class PropletNames {
  /** Proplet ids by name: names are unique, so a name stands for one proplet. */
  private idByName = new Map<string, string>();

  constructor(
    /** The registry's proplets by id (read only here). */
    private proplets: ReadonlyMap<string, Proplet>,
    private names?: IdentityNames,
  ) {}

  /** The name of the proplet identity with this id, if there is one. */
  identityName(id: string): string | undefined {
    return this.names?.propletName(id);
  }

  /** Its identity's name; else `current` or a name made from the id, whichever no one else holds. */
  nameFor(id: string, current?: string): string {
    const given = this.names?.propletName(id);
    if (given) return given;
    if (current !== undefined && !this.nameTaken(current, id)) return current;
    const made = propletName(id);
    return this.nameTaken(made, id) ? `${made}-${id.slice(0, 8)}` : made;
  }

  private nameTaken(name: string, id: string): boolean {
    const holder = this.idByName.get(name) ?? this.names?.named(name);
    return (holder !== undefined && holder !== id) || (name !== id && this.proplets.has(name));
  }

  /**
   * Why a new identity may not take this name or id (manager/identities.ts asks): another proplet is known by it.
   */
  claimedBy(name: string, id: string): string | undefined {
    const holder = this.idByName.get(name);
    if (holder !== undefined && holder !== id)
      return `name ${name} is the name of proplet ${holder} (one gone for good: propeller proplets delete ${holder})`;
    if (name !== id && this.proplets.has(name)) return `name ${name} is the id of another proplet`;
    const named = this.idByName.get(id);
    if (named !== undefined && named !== id) return `id ${id} is the name of proplet ${named}`;
    return undefined;
  }

  /** A proplet by id, or by name (names are unique). */
  byIdOrName(key: string): Proplet | undefined {
    const named = this.idByName.get(key);
    // An identity's name is its proplet's, even against a proplet whose id it is (one that joined unauthenticated).
    if (named !== undefined && named !== key && this.names?.propletName(named) === key) return this.proplets.get(named);
    return this.proplets.get(key) ?? (named === undefined ? undefined : this.proplets.get(named));
  }

  /** Proplet `id` goes by `name` now; `before` was its name (none: new), given up unless another holds it. */
  renamed(id: string, before: string | undefined, name: string): void {
    if (before === name) return;
    if (before !== undefined && this.idByName.get(before) === id) this.idByName.delete(before);
    this.idByName.set(name, id);
  }

  /** Proplet `id`, known by `name`, is forgotten: the name is free again. */
  forget(id: string, name: string | undefined): void {
    if (name !== undefined && this.idByName.get(name) === id) this.idByName.delete(name);
  }
}
