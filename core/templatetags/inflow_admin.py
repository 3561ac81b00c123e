from django import template
from django.utils.safestring import mark_safe

from executions.charts import render_chart

register = template.Library()


@register.simple_tag
def executions_chart() -> str:
    return mark_safe(render_chart())  # noqa: S308 (numbers and fixed labels only, escaped)
