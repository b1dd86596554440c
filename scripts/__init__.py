"""Operator scripts run on the deploying machine (azd hooks); never deployed (.funcignore)."""
