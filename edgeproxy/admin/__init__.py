"""Operating the proxy: the token-protected admin API, its control contract and live statistics."""

from edgeproxy.admin.app import make_admin_app
from edgeproxy.admin.auth import AdminBindError, check_admin_bind
from edgeproxy.admin.control import AdminControl

__all__ = ["AdminBindError", "AdminControl", "check_admin_bind", "make_admin_app"]
