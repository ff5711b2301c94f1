import { useState } from "preact/hooks";
import { ago, api } from "../api.ts";
import { Table } from "../table.tsx";
import { Act, Loading, Revoke, useApi, useSession } from "../ui.tsx";

// Tokens (REST and this console) and provisioned MQTT identities, for admins: create and revoke. A new secret is
// shown once.

interface Token {
  id: string;
  name: string;
  role: string;
  created_at: string;
  revoked_at?: string;
  expires_at?: string;
}
interface Entity {
  id: string;
  name: string;
  kind: string;
  created_at: string;
  revoked_at?: string;
}

export function AccessPage() {
  const s = useSession();
  if (s.role !== "admin")
    return (
      <>
        <h1>Access</h1>
        <p class="muted">Tokens and identities are for admins: sign in with an admin token.</p>
      </>
    );
  return <Admin />;
}

function Admin() {
  const s = useSession();
  const tokens = useApi<{ tokens: Token[] }>("/tokens");
  const entities = useApi<{ entities: Entity[] }>("/entities");
  const [secret, setSecret] = useState<string>();
  const [name, setName] = useState("");
  const [role, setRole] = useState("viewer");
  const [ttl, setTtl] = useState("");
  const [again, setAgain] = useState("");
  const [kind, setKind] = useState("proplet");
  return (
    <>
      <h1>Access</h1>
      {secret && (
        <p role="status">
          Shown once, copy it now: <code>{secret}</code>
        </p>
      )}
      {/* A session's cookie reaches every port of this host: what outlives it is made with the token typed again. */}
      <label>
        Your admin token, again (tokens and identities outlive this session)
        <input type="password" autocomplete="off" value={again} onInput={(e) => setAgain(e.currentTarget.value)} />
      </label>
      <h2>Tokens</h2>
      <div class="actions">
        <label>
          Name
          <input value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </label>
        <label>
          Role
          <select value={role} onChange={(e) => setRole(e.currentTarget.value)}>
            <option value="viewer">viewer</option>
            <option value="admin">admin</option>
          </select>
        </label>
        <label>
          Expires after (e.g. 12h, 7d; empty: never)
          <input value={ttl} onInput={(e) => setTtl(e.currentTarget.value)} />
        </label>
        <Act
          label="Create token"
          primary
          run={async () => {
            const body = {
              ...(name ? { name } : {}),
              role,
              ...(ttl.trim() ? { ttl: ttl.trim() } : {}),
              ...(again.trim() ? { confirm_token: again.trim() } : {}),
            };
            const t = await api<{ token: string }>("POST", "/tokens", body);
            setSecret(t.token);
            tokens.reload();
          }}
        />
      </div>
      <Loading ready={!!tokens.data} error={tokens.error}>
        <Table
          rows={tokens.data?.tokens ?? []}
          rowKey={(t) => t.id}
          columns={[
            { head: "Name", cell: (t) => t.name },
            { head: "Role", cell: (t) => t.role },
            { head: "Created", cell: (t) => ago(t.created_at), wide: true },
            {
              head: "Expires",
              // A past date alone read as still in force.
              cell: (t) =>
                !t.expires_at
                  ? "never"
                  : Date.parse(t.expires_at) <= Date.now()
                    ? `expired ${t.expires_at}`
                    : t.expires_at,
              wide: true,
            },
            {
              head: "Revoke",
              cell: (t) => (
                <Revoke
                  what="token"
                  name={t.name}
                  revoked={t.revoked_at}
                  inUse={t.id === s.id}
                  run={() => api("DELETE", `/tokens/${encodeURIComponent(t.id)}`).then(tokens.reload)}
                />
              ),
            },
          ]}
        />
      </Loading>
      <h2>Identities (MQTT)</h2>
      <div class="actions">
        <label>
          Kind
          <select value={kind} onChange={(e) => setKind(e.currentTarget.value)}>
            <option value="proplet">proplet</option>
            <option value="proxy">proxy</option>
            <option value="manager">manager</option>
          </select>
        </label>
        <Act
          label="Create identity"
          run={async () => {
            const e = await api<{ id: string; api_key: string }>("POST", "/entities", {
              kind,
              ...(again.trim() ? { confirm_token: again.trim() } : {}),
            });
            setSecret(`${e.id}: ${e.api_key}`);
            entities.reload();
          }}
        />
      </div>
      <Loading ready={!!entities.data} error={entities.error}>
        <Table
          rows={entities.data?.entities ?? []}
          rowKey={(e) => e.id}
          columns={[
            { head: "Name", cell: (e) => e.name },
            { head: "Kind", cell: (e) => e.kind },
            { head: "Id", cell: (e) => e.id, wide: true },
            {
              head: "Revoke",
              cell: (e) => (
                <Revoke
                  what="identity"
                  name={e.name}
                  revoked={e.revoked_at}
                  run={() => api("DELETE", `/entities/${encodeURIComponent(e.id)}`).then(entities.reload)}
                />
              ),
            },
          ]}
        />
      </Loading>
    </>
  );
}
