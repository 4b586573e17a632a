"""The time-skipping server with Dumont's search attributes registered (the machine workflow
upserts them, and a server that does not know them fails the workflow task)."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from core import search_attributes


@pytest.fixture(scope="session")
async def ts_env(ts_env: WorkflowEnvironment) -> WorkflowEnvironment:
    await ts_env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=ts_env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
                for key in search_attributes.ALL
            },
        )
    )
    return ts_env
