"""FHIR helpers every layer may use: constants, NHS number rules, resource models, search definitions."""
