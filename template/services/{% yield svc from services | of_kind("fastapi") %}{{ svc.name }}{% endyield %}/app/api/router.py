"""The /api/v1 routers, in matching order: the hot cached reads (users) first.

They are included into the app one by one (see app.main) rather than nested in
one more router: every level of nesting costs route matching on each request.
"""

from fastapi import APIRouter

from app.api.routes import auth, events, exports, health, users

API_PREFIX = "/api/v1"
routers: list[APIRouter] = [users.router, auth.router, exports.router, events.router, health.router]
