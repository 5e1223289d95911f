#!/usr/bin/env python3
"""Drafts part 3 of an upgrade script from two schema dumps.

    migration-draft.py OLD.sql NEW.sql > part3.sql

OLD.sql and NEW.sql are `pg_dump --schema-only --binary-upgrade` of a
database with a fresh install of the old and of the new version
(`--binary-upgrade` is what makes pg_dump print an extension's own
objects). pg_dump prints one block per object, headed
`-- Name: …; Type: …; Schema: …; Owner: …`, in an order that respects
dependencies. For every block of NEW that OLD lacks or prints differently:

- functions, procedures, aggregates and views: their CREATE, made CREATE OR
  REPLACE; functions only OLD has are dropped first;
- comments, event triggers, triggers and tables new in NEW: as printed;
- privileges (ACL blocks): OLD's grants undone, then NEW's;
- anything else that differs (a changed table, index, constraint, type,
  sequence or trigger): listed on stderr, to be written by hand in the
  script's table and data parts. The exit status is then 3.

scripts/migration-draft.sh runs the two installs and splices the result
into the migration; the upgrade test (pgrx-tests/tests/upgrade) checks the
whole script against a fresh install object by object.
"""
import re
import sys

HEADER = re.compile(r"^-- (?:Data for )?Name: (.*); Type: (.*); Schema: (.*); Owner: .*$")
DROP_LINES = (
    "SELECT pg_catalog.binary_upgrade_",
    "ALTER EXTENSION ",
    "-- For binary upgrade",
    # Session settings pg_dump prints between blocks.
    "SET default_tablespace",
    "SET default_table_access_method",
    # psql meta-commands of pg_dump's frame.
    "\\restrict",
    "\\unrestrict",
)
REPLACEABLE = {"FUNCTION", "PROCEDURE", "AGGREGATE", "VIEW"}
VERBATIM_WHEN_NEW = {"EVENT TRIGGER", "TRIGGER", "TABLE", "INDEX", "SEQUENCE",
                     "SEQUENCE OWNED BY", "DEFAULT", "CONSTRAINT", "FK CONSTRAINT"}


def blocks(path):
    """(key, text) per object block, in dump order; key = (type, schema, name)."""
    out = []
    key, lines = None, []
    with open(path, encoding="utf-8") as f:
        raw = f.read().split("\n")
    i = 0
    while i < len(raw):
        line = raw[i]
        m = HEADER.match(line)
        if m and i > 0 and raw[i - 1] == "--" and i + 1 < len(raw) and raw[i + 1] == "--":
            if key is not None:
                out.append((key, clean(lines)))
            key = (m.group(2), m.group(3), m.group(1))
            lines = []
            i += 2
            continue
        if key is not None:
            lines.append(line)
        i += 1
    if key is not None:
        out.append((key, clean(lines)))
    return out


def clean(lines):
    kept = []
    for line in lines:
        if line.startswith(DROP_LINES) or " OWNER TO " in line:
            continue
        kept.append(line.rstrip())
    text = "\n".join(kept)
    # --binary-upgrade's frozen-xid bookkeeping of each new table.
    text = re.sub(r"UPDATE pg_catalog\.pg_class\nSET relfrozenxid = [^;]*;\n?", "", text)
    # pg_dump closes each block with "--" before the next header.
    text = re.sub(r"\n--\s*PostgreSQL database dump complete\s*--\s*$", "", text.strip())
    text = re.sub(r"\n--\s*$", "", text.strip())
    return text.strip()


def replaceable(text):
    text = re.sub(r"^CREATE (FUNCTION|PROCEDURE|AGGREGATE|VIEW) ",
                  r"CREATE OR REPLACE \1 ", text, count=1, flags=re.M)
    # C functions: the library as the control file names it.
    return re.sub(r"^    AS 'pg_vigil', '", "    AS 'MODULE_PATHNAME', '", text, flags=re.M)


def inverse_acl(text):
    undo = []
    for stmt in text.split("\n"):
        stmt = stmt.strip()
        g = re.match(r"^GRANT (.*) ON (.*) TO (.*?)( WITH GRANT OPTION)?;$", stmt)
        r = re.match(r"^REVOKE (.*) ON (.*) FROM (.*);$", stmt)
        if g:
            undo.append(f"REVOKE {g.group(1)} ON {g.group(2)} FROM {g.group(3)};")
        elif r:
            undo.append(f"GRANT {r.group(1)} ON {r.group(2)} TO {r.group(3)};")
    return "\n".join(undo)


def table_of(text):
    """(schema, table) an index, constraint, trigger or default is on."""
    m = re.search(r"\bON (?:ONLY )?([\w\"]+)\.([\w\"]+)|ALTER TABLE (?:ONLY )?([\w\"]+)\.([\w\"]+)", text)
    if not m:
        return None
    schema, table = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    return schema.strip('"'), table.strip('"')


def main(old_path, new_path):
    old_blocks = blocks(old_path)
    old = dict(old_blocks)
    new = blocks(new_path)
    new_keys = {k for k, _ in new}
    out, manual, late = [], [], []
    # Support functions of the old aggregates: dropped at the end, once the
    # CREATE OR REPLACE AGGREGATE below has pointed the aggregate elsewhere.
    agg_support = {m.group(1) for (typ, _, _), text in old_blocks if typ == "AGGREGATE"
                   for m in re.finditer(r"FUNC = ([\w.]+)", text)}

    for (typ, schema, name), _ in old_blocks:
        if (typ, schema, name) in new_keys or schema in ("-", "cron", "public"):
            continue
        if typ in ("FUNCTION", "PROCEDURE", "AGGREGATE"):
            # IF EXISTS: the script's first part may drop it by hand, after
            # what uses it (triggers).
            drop = f"DROP {typ} IF EXISTS {schema}.{name};"
            if f"{schema}.{name.split('(')[0]}" in agg_support:
                late.append(drop)
            else:
                out.append(drop)
        elif typ in ("COMMENT", "ACL"):
            continue  # gone with their object, or back to the default below
        else:
            manual.append(f"only in the old version: {typ} {schema}.{name}")

    for key, text in new:
        typ, schema, name = key
        if old.get(key) == text or schema in ("cron",) or not text:
            continue
        if typ in REPLACEABLE:
            out.append(replaceable(text))
        elif typ == "ACL":
            out.append(f"-- ACL {name}\n")
            if key in old:
                out.append(inverse_acl(old[key]))
            out.append(text)
        elif typ == "COMMENT":
            out.append(text)
        elif typ in VERBATIM_WHEN_NEW and key not in old:
            table = table_of(text)
            if typ in ("INDEX", "CONSTRAINT", "FK CONSTRAINT") and table \
                    and ("TABLE", table[0], table[1]) in old:
                # On a table the old version has: may depend on its data
                # (a unique index, a check), so written by hand, in order.
                manual.append(f"new on an existing table: {typ} {schema}.{name}")
            else:
                out.append(text)
        else:
            manual.append(f"changed: {typ} {schema}.{name}")

    out.extend(late)

    for key, text in old.items():
        typ, schema, name = key
        obj_type, _, obj_name = name.partition(" ")
        if (typ == "ACL" and key not in new_keys and schema not in ("cron", "-")
                and (obj_type, schema, obj_name) in new_keys):
            out.append(f"-- ACL {name} (back to the default)\n")
            out.append(inverse_acl(text))

    sys.stdout.write("\n\n".join(out) + "\n")
    for m in manual:
        print(f"migration-draft: by hand: {m}", file=sys.stderr)
    return 3 if manual else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
