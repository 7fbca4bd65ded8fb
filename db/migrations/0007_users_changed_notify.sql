-- Every process keeps the users its tokens name in memory (so a request does not read its user), and
-- forgets one as soon as it changes: a change to a user, or its deletion, is announced on channel
-- users_changed with the user's id at commit; emptying the table announces '*' (forget everyone).

CREATE FUNCTION notify_user_changed() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('users_changed', OLD.id::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION notify_users_emptied() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('users_changed', '*');
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_update_delete AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION notify_user_changed();
CREATE TRIGGER users_notify_truncate AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION notify_users_emptied();
