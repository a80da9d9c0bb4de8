"""Per-request personalization of cached JSON lists with a LightGBM ranker (no aiohttp here).

The proxy calls ``prepare`` at cache fill, then ``Personalizer.user_context`` and
``Personalizer.rank`` on each hit; ``parse_feedback`` and ``TokenBucketLimiter`` serve the
feedback route; ``Registry.apply`` takes model-rollout messages from the fleet bus.
"""

from edgeproxy.personalize.events import EventBuffer, JsonlSink, RedisStreamSink
from edgeproxy.personalize.features import UserContext, UserProfile
from edgeproxy.personalize.feedback import (
    MAX_FEEDBACK_BYTES,
    FeedbackError,
    RateDecision,
    TokenBucketLimiter,
    parse_feedback,
)
from edgeproxy.personalize.prepared import Prepared, prepare
from edgeproxy.personalize.profiles import (
    MemoryProfileStore,
    ProfileCache,
    RedisProfileStore,
)
from edgeproxy.personalize.ranker import Personalizer, RankOutcome, RankResult
from edgeproxy.personalize.registry import (
    DirectoryBackend,
    RedisBackend,
    Registry,
    rollout_message,
)
from edgeproxy.personalize.runtime import PersonalizeConfig, open_personalizer

__all__ = [
    "MAX_FEEDBACK_BYTES",
    "DirectoryBackend",
    "EventBuffer",
    "FeedbackError",
    "JsonlSink",
    "MemoryProfileStore",
    "PersonalizeConfig",
    "Personalizer",
    "Prepared",
    "ProfileCache",
    "RankOutcome",
    "RankResult",
    "RateDecision",
    "RedisBackend",
    "RedisProfileStore",
    "RedisStreamSink",
    "Registry",
    "TokenBucketLimiter",
    "UserContext",
    "UserProfile",
    "open_personalizer",
    "parse_feedback",
    "prepare",
    "rollout_message",
]
