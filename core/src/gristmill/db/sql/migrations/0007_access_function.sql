-- A caller's access to a workspace as one SQL function, so that the two queries that need it
-- (`get_access`, and `get_token_access`, which resolves an API token and its access to the
-- request's workspace in one round trip) share one definition.
--
-- Returns one row: whether the workspace exists (and is not deleted), the member's role and
-- disabled flag (NULL when not a member), their groups, and the folders they may read, write
-- and own (through "u/<me>", "g/all" and their groups).
CREATE FUNCTION gm_access(ws text, member_email text, member_username text)
RETURNS TABLE (
    ws_exists boolean, role text, disabled boolean, groups text[],
    folders_read text[], folders_write text[], folders_owned text[]
)
LANGUAGE sql STABLE AS $$
    WITH member AS (
        SELECT m.role, m.disabled FROM workspace_member m
        WHERE m.workspace_id = ws AND m.email = member_email
    ), grp AS (
        SELECT coalesce(array_agg(g.group_name ORDER BY g.group_name), '{}') AS names
        FROM group_member g WHERE g.workspace_id = ws AND g.username = member_username
    ), who AS (
        SELECT ARRAY['u/' || member_username, 'g/all']
               || ARRAY(SELECT 'g/' || n FROM grp, unnest(grp.names) AS n) AS owners
    ), fld AS (
        SELECT f.name,
               f.owners && who.owners AS owned,
               f.owners && who.owners
                 OR EXISTS (SELECT 1 FROM jsonb_each(f.extra_perms) e
                            WHERE e.key = ANY (who.owners) AND e.value = 'true'::jsonb)
                 AS writable
        FROM folder f, who
        WHERE f.workspace_id = ws
          AND (f.owners && who.owners OR f.extra_perms ?| who.owners)
    )
    SELECT EXISTS (SELECT 1 FROM workspace w WHERE w.id = ws AND NOT w.deleted),
           (SELECT member.role FROM member),
           (SELECT member.disabled FROM member),
           (SELECT grp.names FROM grp),
           coalesce((SELECT array_agg(fld.name) FROM fld), '{}'),
           coalesce((SELECT array_agg(fld.name) FROM fld WHERE fld.writable), '{}'),
           coalesce((SELECT array_agg(fld.name) FROM fld WHERE fld.owned), '{}')
$$;
