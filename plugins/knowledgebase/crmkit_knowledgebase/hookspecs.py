"""The hook the knowledge base publishes: variables other plugins give reply templates.

A reply template (Jinja2, rendered in a sandbox, see :mod:`crmkit_knowledgebase.templating`)
can always use the built-in variables ``customer``, ``company``, ``staff`` and ``now``.
Other plugins add variables with :func:`crmkit_knowledgebase_register_template_variables`
(the complaints plugin adds ``complaint``). Implement it with
``@crmkit.hookimpl(optionalhook=True)`` so your plugin still loads without the knowledge
base; you never need to import this package.
"""

from __future__ import annotations

from crmkit.plugin import hookspec

__all__ = ["crmkit_knowledgebase_register_template_variables"]


@hookspec
def crmkit_knowledgebase_register_template_variables() -> dict[str, dict[str, str]]:
    """Contribute variables that reply templates may use: ``{variable: {field: description}}``.

    When: each time the knowledge base checks or renders a reply template: saving one
    (``kb.add_template``/``edit_template``, ``crmkit kb template add/edit``, ``crmkit kb
    import``), rendering it (``kb.render``, ``kb.send``, reply proposals) and listing
    the variables (``crmkit kb template variables``). Transaction: none; return constant
    data (no database reads). Returns: ``{variable: {field: description}}``. ``variable``
    is a Python identifier, neither a built-in name (``customer``, ``company``,
    ``staff``, ``now``) nor a variable another enabled plugin contributes; each ``field``
    is a name a template may read as ``{{ variable.field }}``, with a one-line
    description (error messages and ``crmkit kb template variables`` show it). A
    contribution breaking these rules is refused with a ``PluginError`` naming your
    plugin.

    The knowledge base trial-renders a template when it is saved, with placeholder text
    (``<field>``) for every field; a template that uses a variable no enabled plugin
    contributes, or a field the variable does not declare, is refused then. To render
    for real, the caller gives the object (``kb.render(name, variables={"complaint":
    facts})``; ``complaint=facts`` is a shorthand); the knowledge base reads only the
    declared fields from it: by key from a mapping, by attribute from anything else
    (an attrs instance). A field the object lacks makes the render fail with an error
    naming the template.

    Example::

        @crmkit.hookimpl(optionalhook=True)
        def crmkit_knowledgebase_register_template_variables():
            return {
                "complaint": {
                    "tracking_code": "the code the customer follows the case with",
                    "category": "what the complaint is about",
                }
            }
    """
