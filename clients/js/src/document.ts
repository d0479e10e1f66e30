// Where a subscription takes its resume cursor.
//
// Herald resumes a subscription from a cursor passed as its root field's
// `after` argument (server.Options.ResumeArgument; every subscription of an
// engine domain takes `after: String`). A client can only change that value
// between reconnects if it is a variable, because graphql-ws sends the same
// payload, query text included, on every reconnect. So this module finds the
// variable the `after` argument takes, and when the document passes none it
// adds one: `subscription ($r: ID!) { messagePosted(roomId: $r) { id } }`
// becomes `subscription ($r: ID!, $after: String) { messagePosted(roomId: $r,
// after: $after) { id } }`.
import {
  Kind,
  parse,
  print,
  type ArgumentNode,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type VariableDefinitionNode,
  visit,
} from 'graphql';

/** The name of the argument that carries a resume cursor on every Herald subscription. */
export const RESUME_ARGUMENT = 'after';

/** What an operation is: its keyword in the document. */
export type OperationKind = 'query' | 'mutation' | 'subscription';

/** A request ready for graphql-ws, and the variable that carries its cursor. */
export interface PreparedOperation {
  /** The query text to send (the original text when nothing was added). */
  query: string;
  /**
   * The kind of the operation the request runs (the one named
   * operationName, or the document's only one); null when the document
   * selects none (no operation of that name, or several and no name), which
   * the server refuses.
   */
  operation: OperationKind | null;
  /** The variable the root field's `after` takes, or null when the operation cannot resume. */
  cursorVariable: string | null;
  /** The cursor the document itself passed as a literal (now moved into the variable). */
  literalCursor?: string | null;
}

/** The operation a request runs: the one named operationName, or the document's only one. */
function selectOperation(doc: DocumentNode, operationName?: string | null): OperationDefinitionNode | undefined {
  const ops = doc.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  return operationName ? ops.find((o) => o.name?.value === operationName) : ops.length === 1 ? ops[0] : undefined;
}

/**
 * The kind of the operation a request runs, judged as the server will: by
 * the operation operationName selects, not by the document's first one.
 * null when the document selects none or does not parse (the server
 * refuses both).
 */
export function operationKind(query: string | DocumentNode, operationName?: string | null): OperationKind | null {
  let doc: DocumentNode;
  try {
    doc = typeof query === 'string' ? parse(query) : query;
  } catch {
    return null;
  }
  return selectOperation(doc, operationName)?.operation ?? null;
}

/**
 * Prepares an operation for resuming. Queries and mutations come back
 * unchanged, with no cursor variable, and so do subscriptions whose root
 * is not one field (through the fragments at the root, which may hold it).
 */
export function prepareOperation(query: string | DocumentNode, operationName?: string | null): PreparedOperation {
  const doc = typeof query === 'string' ? parse(query) : query;
  const text = () => (typeof query === 'string' ? query : print(query));
  const op = selectOperation(doc, operationName);
  const operation = op?.operation ?? null;
  if (!op || op.operation !== 'subscription') return { query: text(), operation, cursorVariable: null };
  const fragments = new Map(
    doc.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((d) => [d.name.value, d]),
  );
  // One root field, maybe selected several times (merged into one, as
  // GraphQL does): the argument goes on every selection of it.
  const roots = rootField(op.selectionSet, fragments);
  if (!roots) return { query: text(), operation, cursorVariable: null };
  const field = roots[0].field;
  const arg = field.arguments?.find((a) => a.name.value === RESUME_ARGUMENT);
  if (arg?.value.kind === Kind.VARIABLE) return { query: text(), operation, cursorVariable: arg.value.name.value };

  let literalCursor: string | null | undefined;
  if (arg) {
    if (arg.value.kind === Kind.STRING) literalCursor = arg.value.value;
    else if (arg.value.kind === Kind.NULL) literalCursor = null;
    else return { query: text(), operation, cursorVariable: null }; // not a cursor; let the server say so
  }
  // A field in a named fragment gets its argument there, so every
  // operation that spreads the fragment must declare the variable (the
  // server validates all of a document's operations, not only the one it
  // runs): a name none of them uses.
  const declaring = [...new Set(roots.flatMap(({ fragment }) => (fragment
    ? doc.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION && spreads(d, fragment, fragments))
    : [op])))];
  const taken = new Set(declaring.flatMap((o) => (o.variableDefinitions ?? []).map((v) => v.variable.name.value)));
  let name = RESUME_ARGUMENT;
  for (let i = 2; taken.has(name); i++) name = `heraldAfter${i === 2 ? '' : i}`;

  const variable = { kind: Kind.VARIABLE, name: { kind: Kind.NAME, value: name } } as const;
  const definition: VariableDefinitionNode = {
    kind: Kind.VARIABLE_DEFINITION,
    variable,
    type: { kind: Kind.NAMED_TYPE, name: { kind: Kind.NAME, value: 'String' } },
  };
  const argument: ArgumentNode = { kind: Kind.ARGUMENT, name: { kind: Kind.NAME, value: RESUME_ARGUMENT }, value: variable };
  const selected = new Set<FieldNode>(roots.map((r) => r.field));
  const newDoc: DocumentNode = visit(doc, {
    Field: (node): FieldNode | undefined => (selected.has(node)
      ? { ...node, arguments: [...(node.arguments ?? []).filter((a) => a.name.value !== RESUME_ARGUMENT), argument] }
      : undefined),
    OperationDefinition: (node) =>
      declaring.includes(node) ? { ...node, variableDefinitions: [...(node.variableDefinitions ?? []), definition] } : undefined,
  });
  return { query: print(newDoc), operation, cursorVariable: name, literalCursor };
}

/**
 * The one field a subscription's root selects, through the fragments and
 * inline fragments at its root: each selection of it (one response name,
 * which GraphQL merges into one field: two fragments at the root may each
 * select it), with the named fragment that holds it if any; null when the
 * root selects several fields or none (the server refuses those).
 */
function rootField(
  set: SelectionSetNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
): { field: FieldNode; fragment?: string }[] | null {
  const found: { field: FieldNode; fragment?: string }[] = [];
  const seen = new Set<string>();
  const walk = (s: SelectionSetNode, fragment?: string) => {
    for (const sel of s.selections) {
      if (sel.kind === Kind.FIELD) found.push({ field: sel, fragment });
      else if (sel.kind === Kind.INLINE_FRAGMENT) walk(sel.selectionSet, fragment);
      else {
        const f = fragments.get(sel.name.value);
        if (!f || seen.has(f.name.value)) continue; // undefined, or a cycle: the server refuses both
        seen.add(f.name.value);
        walk(f.selectionSet, f.name.value);
      }
    }
  };
  walk(set);
  const key = (f: FieldNode) => (f.alias ?? f.name).value;
  return found.length > 0 && found.every((f) => key(f.field) === key(found[0].field) && f.field.name.value === found[0].field.name.value)
    ? found : null;
}

/** Whether def spreads the named fragment, directly or through others. */
function spreads(def: OperationDefinitionNode, fragment: string, fragments: ReadonlyMap<string, FragmentDefinitionNode>): boolean {
  const seen = new Set<string>();
  const walk = (s: SelectionSetNode): boolean =>
    s.selections.some((sel) => {
      if (sel.kind === Kind.FIELD) return sel.selectionSet ? walk(sel.selectionSet) : false;
      if (sel.kind === Kind.INLINE_FRAGMENT) return walk(sel.selectionSet);
      if (sel.name.value === fragment) return true;
      const f = fragments.get(sel.name.value);
      if (!f || seen.has(f.name.value)) return false;
      seen.add(f.name.value);
      return walk(f.selectionSet);
    });
  return walk(def.selectionSet);
}
