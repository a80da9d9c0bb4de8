"""A coarse device class from User-Agent, for policies that key on it."""

from __future__ import annotations

import re
from enum import Enum

_TABLET = re.compile(r"iPad|Tablet|Kindle|Silk/|PlayBook|Android(?!.*Mobile)", re.IGNORECASE)
_MOBILE = re.compile(r"Mobi|iPhone|iPod|Windows Phone|BlackBerry|Opera Mini", re.IGNORECASE)


class DeviceClass(Enum):
    MOBILE = "mobile"
    TABLET = "tablet"
    DESKTOP = "desktop"


def device_class(user_agent: str | None) -> DeviceClass:
    """Tablet before mobile: tablets also say Android, and Android without ``Mobile`` is a tablet."""
    if not user_agent:
        return DeviceClass.DESKTOP
    if _TABLET.search(user_agent):
        return DeviceClass.TABLET
    if _MOBILE.search(user_agent):
        return DeviceClass.MOBILE
    return DeviceClass.DESKTOP
