"""The `model_quality` table: agreement of each model with its route's audit model, per kind,
over the latest audits, with Wilson confidence bounds; computed from the audit calls in `usage`.

Workers keep the same figures in memory (`pipeline/quality.py`) and seed them from here at start.
"""

from __future__ import annotations

WINDOW = 100  # the latest audits per (model, kind) that count: a model that drifts is caught again
Z = 1.96  # two-sided 95% confidence

_RECENT = """
    SELECT audit_of AS model, kind, agreed, ts
    FROM {source}
    WHERE purpose = 'audit' AND agreed IS NOT NULL AND coalesce(audit_of, '') <> ''
    QUALIFY row_number() OVER (PARTITION BY audit_of, kind ORDER BY ts DESC) <= {window}
"""


def recent_verdicts_sql(source: str) -> str:
    """(model, kind, agreed) of the latest WINDOW audits per model and kind, oldest first."""
    recent = _RECENT.format(source=source, window=WINDOW)
    return f"SELECT model, kind, agreed FROM ({recent}) ORDER BY model, kind, ts"


def model_quality_sql(source: str) -> str:
    """`model, kind, audited, agreed, accuracy, lower, upper` over the latest audits."""
    recent = _RECENT.format(source=source, window=WINDOW)
    z2 = Z * Z
    return f"""
        WITH counts AS (
            SELECT model, kind, count(*) AS audited,
                   count(*) FILTER (WHERE agreed) AS agreed,
                   count(*) FILTER (WHERE agreed) / count(*) AS p
            FROM ({recent}) GROUP BY model, kind)
        SELECT model, kind, audited, agreed, p AS accuracy,
               (p + {z2} / (2 * audited)
                - {Z} * sqrt(p * (1 - p) / audited + {z2} / (4 * audited * audited)))
               / (1 + {z2} / audited) AS lower,
               (p + {z2} / (2 * audited)
                + {Z} * sqrt(p * (1 - p) / audited + {z2} / (4 * audited * audited)))
               / (1 + {z2} / audited) AS upper
        FROM counts"""
