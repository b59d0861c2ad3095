"""Shared test set-up: the default policy, named people, customers and products.

The people, as in every test: rita requests, mona and mark are sales managers
(mark also owns the ACME account), dana is deal desk, fiona and felix are
finance, leo is legal, eva and edgar are executives, olga is a control owner,
adam is an admin, and charlie has no role at all.
"""

import pytest
from django.conf import settings

from waiverdesk.directory import services as directory
from waiverdesk.policies import services as policies
from waiverdesk.testing import PEOPLE


@pytest.fixture(autouse=True)
def _attachments_in_tmp(settings, tmp_path):
    settings.ATTACHMENT_DIR = tmp_path / "attachments"


@pytest.fixture
def world(db):
    """The default policy published, the people above, and some customers and products."""
    policies.publish(settings.DEFAULT_POLICY_FILE.read_text(), note="default")
    people = {name: directory.add_user(name, roles) for name, roles in PEOPLE.items()}
    directory.add_product("DB-ENT", "Database Enterprise", "Database", "high")
    directory.add_product("AN-EDGE", "Analytics Edge", "Analytics", "low")
    directory.add_product("SEC-GW", "Secure Gateway", "Security", "high")
    directory.add_product("COL-SUITE", "Collaboration Suite", "Collaboration", "low")
    directory.add_customer("ACME-001", "Acme", "EMEA", account_owner="mark")
    directory.add_customer("GLOBEX-002", "Globex", "AMER")
    return people


@pytest.fixture
def committed_world(transactional_db):
    """The world, committed, for tests where other threads or a live server must see it."""
    policies.publish(settings.DEFAULT_POLICY_FILE.read_text())
    for name, roles in PEOPLE.items():
        directory.add_user(name, roles)
    directory.add_product("AN-EDGE", "Analytics Edge", "Analytics", "low")
    directory.add_customer("GLOBEX-002", "Globex", "AMER")
