"""Keys, signed requests (HMAC-SM3 / HMAC-SHA256), scopes and the audit chain (§3, §9)."""
