"""Database triggers that make the audit trail append-only, per engine."""

TABLES = ("audit_entry", "audit_checkpoint")
MESSAGE = "audit entries are append-only"

INSTALL = {
    "sqlite": [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        for table in TABLES
        for op in ("UPDATE", "DELETE")
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{MESSAGE}'; END $$",
        *(
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
            for table in TABLES
        ),
    ],
}

# TRUNCATE skips row triggers: on PostgreSQL a statement trigger refuses it too. Only a
# superuser who says so (SET waiverdesk.emptying_audit = 'on', as the test suite's flush
# between tests does) may empty the tables; a superuser could drop the triggers anyway.
TRUNCATE_GUARD = [
    "CREATE OR REPLACE FUNCTION audit_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN IF current_setting('waiverdesk.emptying_audit', true) = 'on' AND "
    "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN RETURN NULL; END IF; "
    f"RAISE EXCEPTION '{MESSAGE}'; END $$",
    *(
        f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate()"
        for table in TABLES
    ),
]
TRUNCATE_UNGUARD = [
    *(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}" for table in TABLES),
    "DROP FUNCTION IF EXISTS audit_refuse_truncate()",
]

UNINSTALL = {
    "sqlite": [
        f"DROP TRIGGER IF EXISTS {table}_no_{op.lower()}"
        for table in TABLES
        for op in ("UPDATE", "DELETE")
    ],
    "postgresql": [f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}" for table in TABLES],
}


def install(vendor: str, execute) -> None:
    for statement in INSTALL[vendor]:
        execute(statement)


def uninstall(vendor: str, execute) -> None:
    for statement in UNINSTALL[vendor]:
        execute(statement)
