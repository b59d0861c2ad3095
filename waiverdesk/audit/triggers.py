"""Database triggers that make the audit trail append-only, per engine."""

MESSAGE = "audit entries are append-only"

INSTALL = {
    "sqlite": [
        f"CREATE TRIGGER IF NOT EXISTS audit_entry_no_update BEFORE UPDATE ON audit_entry "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
        f"CREATE TRIGGER IF NOT EXISTS audit_entry_no_delete BEFORE DELETE ON audit_entry "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_head_forward_only BEFORE UPDATE ON audit_head "
        "WHEN NEW.seq <= OLD.seq "
        "BEGIN SELECT RAISE(ABORT, 'the audit head only moves forward'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_entry_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$",
        "CREATE OR REPLACE TRIGGER audit_entry_no_update_or_delete BEFORE UPDATE OR DELETE "
        "ON audit_entry FOR EACH ROW EXECUTE FUNCTION audit_entry_refuse()",
        "CREATE OR REPLACE FUNCTION audit_head_refuse_rewind() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN IF NEW.seq <= OLD.seq THEN "
        "RAISE EXCEPTION 'the audit head only moves forward'; END IF; RETURN NEW; END $$",
        "CREATE OR REPLACE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head "
        "FOR EACH ROW EXECUTE FUNCTION audit_head_refuse_rewind()",
    ],
}

UNINSTALL = {
    "sqlite": [
        "DROP TRIGGER IF EXISTS audit_entry_no_update",
        "DROP TRIGGER IF EXISTS audit_entry_no_delete",
        "DROP TRIGGER IF EXISTS audit_head_forward_only",
    ],
    "postgresql": [
        "DROP TRIGGER IF EXISTS audit_entry_no_update_or_delete ON audit_entry",
        "DROP TRIGGER IF EXISTS audit_head_forward_only ON audit_head",
    ],
}


def install(vendor: str, execute) -> None:
    for statement in INSTALL[vendor]:
        execute(statement)


def uninstall(vendor: str, execute) -> None:
    for statement in UNINSTALL[vendor]:
        execute(statement)
