"""Money in templates: amounts are integer micro-USD everywhere; these filters only format them."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


def exact_usd(micros: int) -> str:
    """Exact dollars with six decimals, for CSV and anything a spreadsheet sums (``12.345678``)."""
    return str(Decimal(int(micros)) / Decimal(1_000_000))


@register.filter
def usd(micros: int | None) -> str:
    """$1,234.57 for amounts from a dollar up; four decimals below (a call costs fractions of a cent)."""
    value = Decimal(int(micros or 0)) / Decimal(1_000_000)
    if value and abs(value) < 1:
        return f"${value:,.4f}"
    return f"${value:,.2f}"


@register.filter
def usd_exact(micros: int | None) -> str:
    return "$" + exact_usd(micros or 0)


@register.filter
def percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f} %"


@register.filter
def basis_points(value: int | None) -> str:
    """1250 → "12.5 %"."""
    return f"{Decimal(int(value or 0)) / 100:f}".rstrip("0").rstrip(".") + " %"
