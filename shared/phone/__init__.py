"""Telephone providers: their webhook formats and call-control markup."""
