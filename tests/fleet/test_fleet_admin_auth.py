"""The admin API of a fleet proxy refuses callers without the token and says what is wrong with a
malformed purge (the admin app itself is specified in depth in tests/admin)."""

from __future__ import annotations

from tests.fleet.harness import fleet_node


async def test_purge_needs_the_token_and_a_well_formed_body(origin_url: str) -> None:
    async with fleet_node("A", origin_url, None) as a:
        body = '{"all": true}'
        status, answer = await a.admin.call("POST", "/purge", body=body, token=None)
        assert status == 401, answer
        status, answer = await a.admin.call("POST", "/purge", body=body, token="not-the-token")
        assert status == 401, answer
        assert a.bans == 0, "a refused purge must not ban anything"

        status, answer = await a.admin.call("POST", "/purge", body='{"urls": [')
        assert status == 400 and "malformed JSON" in answer["error"], answer
        status, answer = await a.admin.call("POST", "/purge", body='{"urls": ["/relative"]}')
        assert status == 400 and "/relative" in answer["error"], answer
        assert a.bans == 0
