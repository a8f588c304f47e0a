/*
 * obsq_clientid: a Mosquitto 2.0 plugin that binds MQTT client ids to the users the broker
 * authenticates. A client id must begin with its user name and a '-' ("ATDome-0-4242" for user
 * ATDome, "operator-4242-1-9f3a" for operator); any other is refused at CONNECT, before the
 * broker looks for a session of that id. So no principal can take another principal's client
 * id: without this, a read-only observer connecting with "ATDome-0-<pid>" made the broker close
 * ATDome's connection and publish its last will ("gone"), as often as it liked.
 *
 * It only refuses: a client id that fits is passed on (MOSQ_ERR_PLUGIN_DEFER) to the password
 * file, which Mosquitto 2.0 checks after the plugins (security.c: mosquitto_unpwd_check calls
 * the basic-auth callbacks in the order registered; plugins register before the password file).
 * A client without a user name is left to allow_anonymous.
 *
 * Build on the broker host (Debian: apt-get install mosquitto-dev gcc):
 *     deploy/mosquitto/build-plugin /usr/lib/obsq/obsq_clientid.so
 * and load it from site.conf: `plugin /usr/lib/obsq/obsq_clientid.so`.
 */
#include <stdio.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

static mosquitto_plugin_id_t *plugin_id = NULL;

static int id_fits_user(const char *client_id, const char *username)
{
	size_t length = strlen(username);
	return client_id != NULL && strncmp(client_id, username, length) == 0 && client_id[length] == '-';
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *client_id = mosquitto_client_id(ed->client);
	(void)event;
	(void)userdata;

	if(ed->username == NULL){
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	if(id_fits_user(client_id, ed->username)){
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE,
			"obsq_clientid: refused client id '%.128s' of user '%.64s' from %s: a client id must begin with "
			"its user name and '-'", client_id ? client_id : "", ed->username,
			mosquitto_client_address(ed->client) ? mosquitto_client_address(ed->client) : "?");
	return MOSQ_ERR_AUTH;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	int i;
	for(i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5){
			return 5;
		}
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **user_data, struct mosquitto_opt *opts,
		int opt_count)
{
	(void)user_data;
	(void)opts;
	(void)opt_count;
	plugin_id = identifier;
	return mosquitto_callback_register(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *user_data, struct mosquitto_opt *opts, int opt_count)
{
	(void)user_data;
	(void)opts;
	(void)opt_count;
	return mosquitto_callback_unregister(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
}
