/* cli_msg: what `cachet` says, in French (default) or English. Messages are
 * short and say what to do next (spec/domain.md: practitioners are not IT
 * people). Error codes are those of docs/protocol.md §2. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const msgs[M_COUNT][2] = {
    /* {français, English} */
    [M_UNREACHABLE] = {"Le service Cachet (cachetd) ne répond pas. Démarrez-le (cachetd) puis "
                       "réessayez.",
                       "The Cachet service (cachetd) is not answering. Start it (cachetd) and "
                       "try again."},
    [M_NO_READER] = {"Aucun boîtier Cachet n'est branché. Branchez-le puis réessayez.",
                     "No Cachet reader is connected. Plug it in and try again."},
    [M_NO_CARD] = {"Insérez votre carte CPS dans le boîtier Cachet.",
                   "Insert your CPS card into the Cachet reader."},
    [M_CARD_REMOVED] = {"La carte a été retirée pendant l'opération. Réinsérez-la puis "
                        "recommencez.",
                        "The card was removed during the operation. Insert it again and "
                        "retry."},
    [M_PIN_REQUIRED] = {"Code porteur nécessaire : lancez la commande depuis un terminal ou "
                        "avec --pin-fd N.",
                        "PIN needed: run the command from a terminal or with --pin-fd N."},
    [M_PIN_INCORRECT] = {"Code porteur incorrect.", "Incorrect PIN."},
    [M_PIN_BLOCKED] = {"Code porteur bloqué. Débloquez la carte avec votre code de déblocage "
                       "(PUK).",
                       "The PIN is blocked. Unblock the card with your unblocking code "
                       "(PUK)."},
    [M_PIN_FORMAT] = {"Le code porteur comporte 4 à 8 chiffres. Recommencez.",
                      "The PIN is 4 to 8 digits. Try again."},
    [M_CANCELLED] = {"Opération refusée sur le boîtier Cachet (touche Annulation) : rien n'a "
                     "été signé.",
                     "Refused on the Cachet appliance (Cancel key): nothing was signed."},
    [M_TIMEOUT] = {"Délai dépassé : l'opération n'a pas été confirmée sur le boîtier, ou la "
                   "carte n'a pas répondu à temps. Rien n'a été signé ; réessayez.",
                   "Timed out: the operation was not confirmed on the appliance, or the card "
                   "did not answer in time. Nothing was signed; try again."},
    [M_DENIED] = {"Accès refusé par cachetd : ce service appartient à un autre utilisateur.",
                  "Access denied by cachetd: this service belongs to another user."},
    [M_TOO_LARGE] = {"Message trop volumineux pour être signé (10 Mo au plus).",
                     "The message is too large (10 MB at most)."},
    [M_UNTRUSTED] = {"Signature d'un certificat non reconnu (hors IGC-Santé) : ne vous y fiez "
                     "pas.",
                     "Signed with an unrecognised certificate (not IGC-Santé): do not trust "
                     "it."},
    [M_BAD_SIGNATURE] = {"Signature invalide : le message a été modifié ou n'est pas signé.",
                         "Invalid signature: the message was altered or is not signed."},
    [M_SIGNER_MISMATCH] = {"Le signataire n'est pas l'expéditeur indiqué (From).",
                           "The signer is not the sender shown (From)."},
    [M_NOT_MIME] = {"Ce fichier n'est pas un message électronique (RFC 5322).",
                    "This file is not an e-mail message (RFC 5322)."},
    [M_NOT_SUPPORTED] = {"Opération impossible avec cette carte.", "This card cannot do that."},
    [M_BACKEND] = {"Le lecteur de carte a signalé une erreur. Retirez puis réinsérez la carte.",
                   "The card reader reported an error. Remove the card and insert it again."},
    [M_INTERNAL] = {"Erreur interne de cachetd. Consultez son journal.",
                    "cachetd internal error. See its log."},
    [M_VERSION] = {"Versions incompatibles de cachet et cachetd : mettez Cachet à jour.",
                   "cachet and cachetd versions do not match: update Cachet."},
    [M_PIN_PROMPT] = {"Code porteur de la carte CPS : ", "CPS card PIN: "},
    [M_PIN_PROMPT_TRIES] = {"Code porteur de la carte CPS (%d essai(s) restant(s)) : ",
                            "CPS card PIN (%d tries left): "},
    [M_PIN_ON_READER] = {"Tapez votre code porteur sur le boîtier Cachet.",
                         "Type your PIN on the Cachet appliance."},
    [M_PIN_EMPTY] = {"Aucun code porteur lu.", "No PIN was read."},
    [M_TRIES_LEFT] = {"Il reste %d essai(s).", "%d tries left."},
    [M_TRIES_SHORT] = {"%d essai(s) restant(s)", "%d tries left"},
    [M_READER] = {"Lecteur       : %s (clavier : %s)", "Reader        : %s (PIN pad: %s)"},
    [M_READER_NONE] = {"Lecteur       : aucun boîtier branché", "Reader        : none connected"},
    [M_PINPAD_YES] = {"oui", "yes"},
    [M_PINPAD_NO] = {"non", "no"},
    [M_CARD] = {"Carte         : %s", "Card          : %s"},
    [M_CARD_ABSENT] = {"absente", "none"},
    [M_CARD_PRESENT] = {"présente, n° %s", "present, serial %s"},
    [M_CARD_NOT_READY] = {"présente, illisible (%s)", "present, unreadable (%s)"},
    [M_HOLDER] = {"Porteur       : %s %s", "Holder        : %s %s"},
    [M_PIN_STATE] = {"Code porteur  : %s", "PIN           : %s"},
    [M_PIN_VERIFIED] = {"vérifié", "verified"},
    [M_PIN_NOT_VERIFIED] = {"non vérifié", "not verified"},
    [M_SERVICE] = {"Service       : %s (accès carte : %s)", "Service       : %s (card access: %s)"},
    [M_PROFESSION] = {"Profession    : %s", "Profession    : %s"},
    [M_CARD_TYPE] = {"Carte         : %s, n° %s", "Card          : %s, serial %s"},
    [M_STRUCTURE] = {"Structure     : %s (%s)", "Organisation  : %s (%s)"},
    [M_EMAIL] = {"Messagerie    : %s", "Mail address  : %s"},
    [M_VALIDITY] = {"Validité      : du %s au %s", "Valid         : from %s to %s"},
    [M_CHAIN] = {"Certificats   : %s", "Certificates  : %s"},
    [M_CHAIN_OK] = {"reconnus (IGC-Santé)", "trusted (IGC-Santé)"},
    [M_CHAIN_BAD] = {"NON reconnus : %s (%s)", "NOT trusted: %s (%s)"},
    [M_KEYS] = {"Clés          : authentification %s, signature %s",
                "Keys          : authentication %s, signature %s"},
    [M_SIGNED_OK] = {"Message signé par la carte (de : %s, objet : %s).",
                     "Message signed with the card (from: %s, subject: %s)."},
    [M_VERIFY_OK] = {"Signature valide : %s (%s).", "Valid signature: %s (%s)."},
    [M_VERIFY_FROM_OK] = {"L'expéditeur (From) est bien le signataire.",
                          "The sender (From) is the signer."},
    [M_VERIFY_FROM_BAD] = {"Attention : l'expéditeur (From) %s n'est pas l'adresse du signataire.",
                           "Warning: the sender (From) %s is not the signer's address."},
    [M_VERIFY_BAD] = {"Détail : %s", "Detail: %s"},
    [M_LOGIN_OK] = {"Défi signé avec la clé d'authentification (%s).",
                    "Challenge signed with the authentication key (%s)."},
    [M_PIN_OK] = {"Code porteur vérifié.", "PIN verified."},
    [M_AUDIT_OK] = {"Journal d'audit intègre : %llu entrée(s).", "Audit log intact: %llu entries."},
    [M_AUDIT_BAD] = {"Journal d'audit ALTÉRÉ (ligne %llu) : %s",
                     "Audit log ALTERED (line %llu): %s"},
    [M_AUDIT_EMPTY] = {"Journal d'audit vide.", "The audit log is empty."},
    [M_EV_INSERTED] = {"carte insérée", "card inserted"},
    [M_EV_REMOVED] = {"carte retirée", "card removed"},
    [M_EV_READER_ADDED] = {"boîtier branché", "reader connected"},
    [M_EV_READER_GONE] = {"boîtier débranché", "reader disconnected"},
    [M_EV_PIN_NEEDED] = {"code porteur attendu sur le boîtier", "PIN expected on the reader"},
    [M_EV_FINISHED] = {"opération terminée", "operation finished"},
    [M_EV_WAITING] = {"En attente d'événements (Ctrl-C pour arrêter)…",
                      "Waiting for events (Ctrl-C to stop)…"},
    [M_CHALLENGE_TOO_BIG] = {"Le défi doit faire de 1 à 1024 octets.",
                             "The challenge must be 1 to 1024 bytes."},
    [M_FILE_ERROR] = {"%s : %s", "%s: %s"},
    [M_DEVICE] = {"Boîtier Cachet : micrologiciel %s, %lld reçu(s) émis",
                  "Cachet appliance: firmware %s, %lld receipt(s) issued"},
    [M_DEVICE_FPR] = {"Clé d'appareil (SHA-256) : %s", "Device key (SHA-256): %s"},
    [M_DEVICE_KEY] = {"Clé publique (ECDSA P-256, SubjectPublicKeyInfo en base64) :\n  %s",
                      "Public key (ECDSA P-256, SubjectPublicKeyInfo in base64):\n  %s"},
    [M_DEVICE_PINNED_NOW] = {"Clé d'appareil enregistrée (première utilisation) : les reçus de "
                             "ce boîtier seront vérifiés avec elle.",
                             "Device key pinned (first use): this appliance's receipts will be "
                             "checked with it."},
    [M_DEVICE_MATCH] = {"Clé d'appareil conforme à la clé enregistrée.",
                        "The device key is the pinned one."},
    [M_DEVICE_MISMATCH] =
        {"ATTENTION : LA CLÉ DE CE BOÎTIER A CHANGÉ !\n"
         "  Clé enregistrée : %s\n"
         "  Ce boîtier n'est peut-être pas le vôtre, ou il a été réinitialisé.\n"
         "  Ses reçus ne sont PAS reconnus. Si vous êtes certain de ce boîtier :\n"
         "  cachet device --repin",
         "WARNING: THIS APPLIANCE'S KEY HAS CHANGED!\n"
         "  Pinned key: %s\n"
         "  This may not be your appliance, or it was reset. Its receipts are\n"
         "  NOT trusted. If you are sure of this appliance: cachet device --repin"},
    [M_DEVICE_REPINNED] = {"Nouvelle clé d'appareil enregistrée à votre demande.",
                           "New device key pinned at your request."},
    [M_DEVICE_NO_KEY] = {"ATTENTION : le boîtier n'a pas de clé d'appareil : il ne peut pas "
                         "signer de reçus.",
                         "WARNING: the appliance has no device key: it cannot sign receipts."},
    [M_DEVICE_REPLACED] = {"ATTENTION : le boîtier signale avoir remplacé une clé endommagée.",
                           "WARNING: the appliance reports it replaced a damaged key."},
    [M_DEVICE_PIN_ERROR] = {"La clé enregistrée ne peut être lue ou écrite : %s",
                            "The pinned key cannot be read or written: %s"},
    [M_RECEIPTS_OK] = {"Reçus du boîtier : %llu vérifié(s) avec la clé d'appareil enregistrée.",
                       "Appliance receipts: %llu verified with the pinned device key."},
    [M_RECEIPTS_NONE] = {"Reçus du boîtier : aucun.", "Appliance receipts: none."},
    [M_RECEIPTS_BAD] = {"Reçu du boîtier INVALIDE (ligne %llu) : %s",
                        "INVALID appliance receipt (line %llu): %s"},
    [M_RECEIPTS_SKIPPED] = {"Reçus du boîtier non vérifiés : aucune clé d'appareil enregistrée "
                            "(%s).",
                            "Appliance receipts not checked: no pinned device key (%s)."},
    [M_SIGNED_RECEIPT] = {"Confirmé sur le boîtier Cachet : reçu n° %lld.",
                          "Confirmed on the Cachet appliance: receipt no. %lld."},
    [M_RECEIPT_UNTRUSTED] = {"ATTENTION : ce reçu ne vient pas du boîtier enregistré (cachet "
                             "device).",
                             "WARNING: this receipt is not from the pinned appliance (cachet "
                             "device)."},
    [M_SIGNED_UNANNOUNCED] = {"Attention : le boîtier n'a pas pu afficher le résumé du message.",
                              "Note: the appliance could not show the message's summary."},
};

bool cli_lang_en(void)
{
    /* POSIX precedence: LC_ALL, then LC_MESSAGES, then LANG. */
    static const char *const vars[] = {"LC_ALL", "LC_MESSAGES", "LANG"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        if (v != NULL && v[0] != '\0')
            return strncmp(v, "en", 2) == 0;
    }
    return false;
}

const char *cli_msg(cli_msg_t m)
{
    if ((int)m < 0 || m >= M_COUNT || msgs[m][0] == NULL)
        return "?";
    return msgs[m][cli_lang_en() ? 1 : 0];
}

static const struct {
    const char *code;
    cli_msg_t msg;
    int exit_code;
} codes[] = {
    {"no-reader", M_NO_READER, CLI_EXIT_NO_CARD},
    {"no-card", M_NO_CARD, CLI_EXIT_NO_CARD},
    {"card-removed", M_CARD_REMOVED, CLI_EXIT_NO_CARD},
    {"pin-required", M_PIN_REQUIRED, CLI_EXIT_PIN},
    {"pin-incorrect", M_PIN_INCORRECT, CLI_EXIT_PIN},
    {"pin-blocked", M_PIN_BLOCKED, CLI_EXIT_PIN},
    {"pin-format", M_PIN_FORMAT, CLI_EXIT_PIN},
    {"cancelled", M_CANCELLED, CLI_EXIT_CANCELLED},
    {"timeout", M_TIMEOUT, CLI_EXIT_CANCELLED},
    {"denied", M_DENIED, CLI_EXIT_REFUSED},
    {"too-large", M_TOO_LARGE, CLI_EXIT_REFUSED},
    {"untrusted", M_UNTRUSTED, CLI_EXIT_REFUSED},
    {"bad-signature", M_BAD_SIGNATURE, CLI_EXIT_FAILED},
    {"signer-mismatch", M_SIGNER_MISMATCH, CLI_EXIT_FAILED},
    {"not-mime", M_NOT_MIME, CLI_EXIT_FAILED},
    {"not-supported", M_NOT_SUPPORTED, CLI_EXIT_FAILED},
    {"backend", M_BACKEND, CLI_EXIT_FAILED},
    {"version", M_VERSION, CLI_EXIT_UNREACHABLE},
    {"unreachable", M_UNREACHABLE, CLI_EXIT_UNREACHABLE}, /* the CLI's own */
};

cli_msg_t cli_msg_for_code(const char *code)
{
    for (size_t i = 0; code != NULL && i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(codes[i].code, code) == 0)
            return codes[i].msg;
    return M_INTERNAL;
}

int cli_exit_for_code(const char *code)
{
    for (size_t i = 0; code != NULL && i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(codes[i].code, code) == 0)
            return codes[i].exit_code;
    return CLI_EXIT_FAILED;
}

/* ---- help ------------------------------------------------------------------ */

static const char help_fr[] =
    "usage : cachet [--json] [--socket CHEMIN] [--pin-fd N] COMMANDE [ARGUMENTS]\n"
    "\n"
    "Utilise votre carte CPS par le service Cachet (cachetd), seul à parler à la carte.\n"
    "\n"
    "Commandes :\n"
    "  status                         état du boîtier, de la carte et du code porteur\n"
    "  whoami                         le porteur de la carte (nom, RPPS/ADELI, profession)\n"
    "  sign-mail [FICHIER|-] [-o SORTIE|-]\n"
    "                                 signe un message (S/MIME) avec la clé de signature\n"
    "  verify-mail [FICHIER|-]        vérifie un message signé et dit qui l'a signé\n"
    "  login --challenge FICHIER|- [-o SIGNATURE]\n"
    "                                 signe un défi de connexion (clé d'authentification)\n"
    "  verify-pin                     vérifie le code porteur\n"
    "  audit show [-n N]              les N dernières opérations de la carte\n"
    "  audit verify [--log CHEMIN]    vérifie l'intégrité du journal d'audit\n"
    "  events [--count N]             affiche les événements (carte insérée, retirée…)\n"
    "  device [--repin]               le boîtier Cachet et sa clé d'appareil (reçus)\n"
    "  help [COMMANDE]                cette aide, ou celle d'une commande\n"
    "\n"
    "Options :\n"
    "  --json         affiche la réponse de cachetd en JSON (sur la sortie standard,\n"
    "                 ou sur l'erreur standard quand le message signé y part)\n"
    "  --socket CHEMIN  socket de cachetd (défaut $XDG_RUNTIME_DIR/cachet/cachetd.sock)\n"
    "  --pin-fd N     lit le code porteur sur le descripteur N (1re ligne), pour les scripts ;\n"
    "                 sinon il est demandé sur le terminal, sans écho, ou tapé sur le boîtier\n"
    "                 s'il a un clavier\n"
    "\n"
    "Codes de sortie :\n"
    "  0 réussi   1 échec (signature invalide…)   2 mauvaise utilisation\n"
    "  3 cachetd injoignable   4 pas de boîtier ou de carte (ou carte retirée)\n"
    "  5 code porteur incorrect, bloqué ou nécessaire   6 annulé ou délai dépassé\n"
    "    (sur le boîtier : touche Annulation, ou pas de confirmation à temps)\n"
    "  7 refusé (accès refusé, signataire non reconnu, message trop gros)\n"
    "\n"
    "Messages en anglais : LANG=en_US.UTF-8 cachet …   Guide : docs/cachet.md\n";

static const char help_en[] =
    "usage: cachet [--json] [--socket PATH] [--pin-fd N] COMMAND [ARGS]\n"
    "\n"
    "Uses your CPS card through the Cachet service (cachetd), the card's only owner.\n"
    "\n"
    "Commands:\n"
    "  status                         reader, card and PIN state\n"
    "  whoami                         the card holder (name, RPPS/ADELI, profession)\n"
    "  sign-mail [FILE|-] [-o OUT|-]  signs a message (S/MIME) with the signature key\n"
    "  verify-mail [FILE|-]           verifies a signed message and says who signed it\n"
    "  login --challenge FILE|- [-o SIGFILE]\n"
    "                                 signs a login challenge (authentication key)\n"
    "  verify-pin                     verifies the PIN\n"
    "  audit show [-n N]              the last N card operations\n"
    "  audit verify [--log PATH]      checks the audit log's integrity\n"
    "  events [--count N]             prints events (card inserted, removed, ...)\n"
    "  device [--repin]               the Cachet appliance and its device key (receipts)\n"
    "  help [COMMAND]                 this help, or one command's\n"
    "\n"
    "Options:\n"
    "  --json         prints cachetd's answer as JSON (on stdout, or on stderr when the\n"
    "                 signed message goes to stdout)\n"
    "  --socket PATH  cachetd's socket (default $XDG_RUNTIME_DIR/cachet/cachetd.sock)\n"
    "  --pin-fd N     reads the PIN from descriptor N (first line), for scripts; otherwise\n"
    "                 it is asked on the terminal without echo, or typed on the reader's\n"
    "                 keypad when it has one\n"
    "\n"
    "Exit codes:\n"
    "  0 ok   1 failed (invalid signature, ...)   2 usage\n"
    "  3 cachetd unreachable   4 no reader or card (or card removed)\n"
    "  5 PIN incorrect, blocked or required   6 cancelled or timed out\n"
    "  7 refused (denied, untrusted signer, message too large)\n"
    "\n"
    "Guide: docs/cachet.md\n";

static const struct {
    const char *name;
    const char *fr, *en;
} cmd_help[] = {
    {"status",
     "cachet status\n  État du boîtier (branché, clavier), de la carte (présente, n°, porteur)\n"
     "  et du code porteur (vérifié, essais restants).\n",
     "cachet status\n  Reader (connected, PIN pad), card (present, serial, holder) and PIN\n"
     "  (verified, tries left).\n"},
    {"whoami",
     "cachet whoami\n  Le porteur de la carte : nom, prénom, profession, identifiant national\n"
     "  (RPPS ou ADELI), type de carte (CPS, CPE…), structure pour les cartes\n"
     "  d'établissement, adresse de messagerie, validité et confiance des certificats.\n",
     "cachet whoami\n  The card holder: name, profession, national identifier (RPPS or\n"
     "  ADELI), card type (CPS, CPE, ...), organisation on staff cards, mail address,\n"
     "  validity and trust of the certificates.\n"},
    {"sign-mail",
     "cachet sign-mail [FICHIER|-] [-o SORTIE|-]\n"
     "  Signe un message complet (RFC 5322) avec la clé de signature de la carte :\n"
     "  S/MIME multipart/signed, SHA-256, certificat et chaîne joints. Lit FICHIER\n"
     "  (ou l'entrée standard), écrit le message signé dans SORTIE (ou la sortie\n"
     "  standard). SORTIE n'est écrite qu'en cas de réussite. Le code porteur est\n"
     "  demandé s'il n'a pas été vérifié (voir --pin-fd).\n"
     "  Exemple : cachet sign-mail lettre.eml -o lettre-signee.eml\n",
     "cachet sign-mail [FILE|-] [-o OUT|-]\n"
     "  Signs a whole message (RFC 5322) with the card's signature key: S/MIME\n"
     "  multipart/signed, SHA-256, certificate and chain included. Reads FILE (or\n"
     "  stdin), writes the signed message to OUT (or stdout); OUT is written only on\n"
     "  success. The PIN is asked if not verified yet (see --pin-fd).\n"
     "  Example: cachet sign-mail letter.eml -o letter-signed.eml\n"},
    {"verify-mail",
     "cachet verify-mail [FICHIER|-]\n"
     "  Vérifie la signature S/MIME d'un message, la chaîne de confiance (IGC-Santé)\n"
     "  et que le signataire est l'expéditeur. Code 0 si valide, 1 si invalide,\n"
     "  7 si le signataire n'est pas reconnu.\n",
     "cachet verify-mail [FILE|-]\n"
     "  Verifies a message's S/MIME signature, its chain (IGC-Santé) and that the\n"
     "  signer is the sender. Exit 0 if valid, 1 if invalid, 7 if the signer is not\n"
     "  trusted.\n"},
    {"login",
     "cachet login --challenge FICHIER|- [-o SIGNATURE]\n"
     "  Signe SHA-256(défi) avec la clé d'authentification (sha256WithRSAEncryption,\n"
     "  1 à 1024 octets de défi). Écrit la signature brute dans SIGNATURE, ou l'affiche\n"
     "  en base64. --json donne aussi le certificat et la chaîne. Vérification :\n"
     "    openssl dgst -sha256 -verify cle-publique.pem -signature SIGNATURE DEFI\n",
     "cachet login --challenge FILE|- [-o SIGFILE]\n"
     "  Signs SHA-256(challenge) with the authentication key (sha256WithRSAEncryption,\n"
     "  1 to 1024 bytes of challenge). Writes the raw signature to SIGFILE, or prints\n"
     "  it in base64. --json also gives the certificate and chain. To verify:\n"
     "    openssl dgst -sha256 -verify pubkey.pem -signature SIGFILE CHALLENGE\n"},
    {"verify-pin",
     "cachet verify-pin\n  Vérifie le code porteur (une seule tentative : jamais de nouvel essai\n"
     "  automatique). Affiche les essais restants en cas d'erreur.\n",
     "cachet verify-pin\n  Verifies the PIN (one attempt: never retried automatically). Shows the\n"
     "  tries left on error.\n"},
    {"audit",
     "cachet audit show [-n N]\n  Les N dernières opérations (20 par défaut) : date, programme, "
     "opération,\n"
     "  clé, empreinte, résultat.\n"
     "cachet audit verify [--log CHEMIN [--device-pin FICHIER]]\n  Vérifie le chaînage du "
     "journal d'audit (toute\n"
     "  modification, suppression ou permutation est détectée) et chaque reçu du\n"
     "  boîtier avec la clé d'appareil enregistrée. Avec --log, vérifie ce fichier\n"
     "  directement, sans cachetd (clé : device.pin à côté du journal, ou\n"
     "  --device-pin). Code 0 si intègre, 1 sinon.\n",
     "cachet audit show [-n N]\n  The last N operations (20 by default): time, program, operation, "
     "key,\n"
     "  digest, result.\n"
     "cachet audit verify [--log PATH [--device-pin FILE]]\n  Checks the audit log's hash "
     "chain (any edit,\n"
     "  deletion or reordering is detected) and every appliance receipt with the\n"
     "  pinned device key. With --log, checks that file directly, without cachetd\n"
     "  (key: device.pin beside the log, or --device-pin). Exit 0 if intact, 1\n"
     "  otherwise.\n"},
    {"device",
     "cachet device [--repin]\n"
     "  Le boîtier Cachet : version, nombre de reçus émis, clé d'appareil (ECDSA\n"
     "  P-256). À la première utilisation, la clé est enregistrée ; les reçus de\n"
     "  signature sont vérifiés avec elle. Une autre clé ensuite est signalée\n"
     "  (code 1) et jamais acceptée d'elle-même ; --repin l'enregistre à la place,\n"
     "  si vous êtes certain de ce boîtier.\n",
     "cachet device [--repin]\n"
     "  The Cachet appliance: version, receipts issued, device key (ECDSA P-256).\n"
     "  The key is pinned on first use; signature receipts are checked with it.\n"
     "  Another key later is reported (exit 1), never accepted by itself; --repin\n"
     "  pins it instead, if you are sure of this appliance.\n"},
    {"sendmail",
     "cachet sendmail [-t] [-i|-oi] [-f EXPÉDITEUR] [-F NOM] [--server HÔTE:PORT]\n"
     "                [--ca FICHIER] [--max-size N[k|M]] [DESTINATAIRE...] < message\n"
     "  Compatible sendmail (neomutt `set sendmail=`, git sendemail.sendmailCmd) :\n"
     "  signe le message avec la clé de signature (confirmation sur le boîtier), puis\n"
     "  le soumet en SMTP + STARTTLS (TLS 1.2), authentifié par la carte. -t : les\n"
     "  destinataires sont pris dans To/Cc/Bcc (Bcc retiré). Serveur : --server,\n"
     "  CACHET_SUBMISSION ou `submission =` dans ~/.config/cachet/cachet.conf.\n"
     "  Codes (sysexits) : 0 envoyé, 64 usage, 65 message trop gros / illisible,\n"
     "  67 destinataire refusé, 69 cachetd, carte ou serveur indisponible (TLS),\n"
     "  70 erreur interne, 75 échec temporaire, 77 refusé (Annuler, code porteur,\n"
     "  expéditeur).\n",
     "cachet sendmail [-t] [-i|-oi] [-f SENDER] [-F NAME] [--server HOST:PORT]\n"
     "                [--ca FILE] [--max-size N[k|M]] [RECIPIENT...] < message\n"
     "  sendmail-compatible (neomutt `set sendmail=`, git sendemail.sendmailCmd):\n"
     "  signs the message with the signature key (confirmed on the appliance), then\n"
     "  submits it over SMTP + STARTTLS (TLS 1.2), authenticated by the card. -t:\n"
     "  recipients from To/Cc/Bcc (Bcc removed). Server: --server,\n"
     "  CACHET_SUBMISSION or `submission =` in ~/.config/cachet/cachet.conf.\n"
     "  Exit codes (sysexits): 0 sent, 64 usage, 65 too large / unreadable,\n"
     "  67 recipient refused, 69 cachetd, card or server unavailable (TLS),\n"
     "  70 internal, 75 temporary failure, 77 refused (Cancel, PIN, sender).\n"},
    {"events",
     "cachet events [--count N]\n  Affiche les événements de cachetd (carte insérée ou retirée, "
     "boîtier\n"
     "  branché ou débranché, code attendu, opération terminée) ; s'arrête après N.\n",
     "cachet events [--count N]\n  Prints cachetd's events (card inserted or removed, reader "
     "connected or\n"
     "  disconnected, PIN expected, operation finished); stops after N.\n"},
};

const char *cli_help(const char *command)
{
    bool en = cli_lang_en();
    if (command == NULL)
        return en ? help_en : help_fr;
    for (size_t i = 0; i < sizeof cmd_help / sizeof cmd_help[0]; i++)
        if (strcmp(cmd_help[i].name, command) == 0)
            return en ? cmd_help[i].en : cmd_help[i].fr;
    return NULL;
}
