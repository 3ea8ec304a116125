"""Verifiable rewards: math answer match, code tests in a sandbox, QA exact match."""
