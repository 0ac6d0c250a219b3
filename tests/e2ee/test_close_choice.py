"""A close code chosen by a failure wins over a later generic close."""

from __future__ import annotations

import pytest

from flowersec_endpoint.transport import ChoosesClose, TransportClosed, memory_pair


async def test_memory_transport_keeps_the_chosen_code() -> None:
    a, b = memory_pair()
    assert isinstance(a, ChoosesClose)
    a.choose_close(1002)
    a.choose_close(1011)
    await a.close()
    with pytest.raises(TransportClosed) as info:
        await b.recv()
    assert info.value.code == 1002


async def test_without_a_choice_the_callers_code_goes() -> None:
    a, b = memory_pair()
    await a.close(1001, "bye")
    with pytest.raises(TransportClosed) as info:
        await b.recv()
    assert (info.value.code, info.value.reason) == (1001, "bye")
